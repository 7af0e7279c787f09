import { describe, expect, it } from 'vitest';
import type { ManifestRecord } from '../src/image/reader.js';
import type { SourceInventory, TagEntry } from '../src/inventory/types.js';
import { mapRepository, parseMapRule, type NameMapping } from '../src/plan/map-names.js';
import { joinPlans, planMigration, planTotals, selectCandidates, type Plan } from '../src/plan/plan.js';
import { planCharges } from '../src/plan/quota.js';

const HARBOR: NameMapping = { rules: [], defaultProject: 'library', harbor: true };

describe('mapRepository', () => {
  it.each([
    ['busybox', HARBOR, 'library/busybox'],
    ['library/alpine', HARBOR, 'library/alpine'],
    ['infra/tools/kubectl', HARBOR, 'infra/tools/kubectl'],
    ['busybox', { ...HARBOR, defaultProject: 'base' }, 'base/busybox'],
    ['old/app', { ...HARBOR, rules: [{ from: 'old', to: 'new' }] }, 'new/app'],
    ['older/app', { ...HARBOR, rules: [{ from: 'old', to: 'new' }] }, 'older/app'],
    ['old', { ...HARBOR, rules: [{ from: 'old', to: 'new/old' }] }, 'new/old'],
    ['a/b/c', { ...HARBOR, rules: [{ from: 'a', to: 'x' }, { from: 'a/b', to: 'y' }] }, 'y/c'],
    ['team/app', { ...HARBOR, rules: [{ from: 'team', to: '' }] }, 'library/app'],
    ['my__team/app', { ...HARBOR, harbor: false }, 'my__team/app'],
  ])('%s → %s', (source, mapping, expected) => {
    expect(mapRepository(source, mapping)).toMatchObject({ ok: true, repository: expected });
  });

  it.each([
    ['my__team/app', /"my__team" .* is not a valid Harbor project name/],
    ['my--team/app', /"my--team" .* is not a valid Harbor project name/],
  ])('refuses %s for Harbor', (source, reason) => {
    const mapped = mapRepository(source, HARBOR);
    expect(mapped.ok).toBe(false);
    if (!mapped.ok) expect(mapped.reason).toMatch(reason);
  });

  it.each([
    ['a=b', { from: 'a', to: 'b' }],
    ['a/b=c/d/', { from: 'a/b', to: 'c/d' }],
    ['a=', { from: 'a', to: '' }],
    ['nope', '--map "nope" is not from=to'],
    ['=b', '--map "=b" is not from=to'],
    ['A=b', '--map "A=b": "A" is not a repository name prefix'],
  ])('parseMapRule(%j)', (text, expected) => {
    expect(parseMapRule(text)).toEqual(expected);
  });
});

const d = (c: string) => `sha256:${c.repeat(64)}`;

function tag(repository: string, name: string, digest: string, blobs: Array<[string, number]>, extra: Partial<TagEntry> = {}): TagEntry {
  return {
    repository,
    tag: name,
    digest,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    platforms: [],
    manifests: [digest],
    blobs: blobs.map(([digestOf, size]) => ({ digest: digestOf, size, mediaType: undefined, present: true, foreign: false })),
    size: blobs.reduce((s, [, n]) => s + n, 0),
    faults: [],
    ...extra,
  };
}

function inventory(tags: TagEntry[]): SourceInventory {
  const manifests = new Map<string, ManifestRecord>();
  for (const t of tags) {
    for (const m of t.manifests) {
      manifests.set(m, { digest: m, kind: 'image', mediaType: 'application/vnd.oci.image.manifest.v1+json', bytes: Buffer.from('{}'), parsed: { kind: 'image', mediaType: '', blobs: [], children: [], subject: undefined } });
    }
  }
  return { root: '/x', tags, manifests, untaggedCount: 0, readFaults: [] };
}

describe('planMigration', () => {
  const base: [string, number] = [d('b'), 1000];
  const inv = inventory([
    tag('team/a', 'v1', d('1'), [base, [d('c'), 10]]),
    tag('team/b', 'v1', d('2'), [base, [d('e'), 20]]),
    tag('other/c', 'v1', d('3'), [base]),
    tag('team/a', 'alias', d('1'), [base, [d('c'), 10]]),
    tag('broken/x', 'v1', d('4'), [], { faults: [{ kind: 'missing-blob', message: 'layer gone', digest: d('f') }] }),
    tag('bad__name/y', 'v1', d('5'), [[d('9'), 5]]),
    tag('win/app', 'v1', d('6'), [[d('a'), 30]], {
      blobs: [
        { digest: d('a'), size: 30, mediaType: undefined, present: true, foreign: false },
        { digest: d('7'), size: 900, mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', present: false, foreign: true },
      ],
    }),
  ]);
  const candidates = selectCandidates(inv, HARBOR);

  it('uploads each blob once and mounts it into every other repository that needs it', () => {
    const plan = planMigration(candidates, inv.manifests, { projectExists: () => false, tags: new Map() });
    const shared = plan.blobs.find((b) => b.digest === d('b'))!;
    expect(shared.home).toBe('team/a');
    expect([...shared.mounts].sort()).toEqual(['other/c', 'team/b']);
    expect(plan.blobs.map((b) => b.digest).sort()).toEqual([d('a'), d('b'), d('c'), d('e')].sort());
    expect(planTotals(plan)).toMatchObject({ images: 5, blobsToUpload: 4, bytesToUpload: 1060, mounts: 2, rejected: 2 });
  });

  it('orders blobs largest first', () => {
    const plan = planMigration(candidates, inv.manifests, { projectExists: () => false, tags: new Map() });
    const sizes = plan.blobs.map((b) => b.size);
    expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
  });

  it('lists the projects to create, once each, only where missing', () => {
    const plan = planMigration(candidates, inv.manifests, { projectExists: (p) => p === 'team', tags: new Map() });
    expect(plan.projectsToCreate).toEqual(['other', 'win']);
  });

  it('rejects faulty images and names Harbor cannot take, with reasons', () => {
    const plan = planMigration(candidates, inv.manifests, { projectExists: () => true, tags: new Map() });
    expect(plan.rejected.map((r) => [r.source, r.reason.split(':')[0]])).toEqual([
      ['broken/x:v1', 'missing-blob'],
      ['bad__name/y:v1', 'invalid-name'],
    ]);
  });

  it('skips tags the destination already has at the same digest, and their blobs', () => {
    const plan = planMigration(candidates, inv.manifests, {
      projectExists: () => true,
      tags: new Map([
        ['team/a:v1', d('1')],
        ['team/a:alias', d('1')],
        ['team/b:v1', d('0')],
      ]),
    });
    expect(plan.existing.map((i) => i.source).sort()).toEqual(['team/a:alias', 'team/a:v1']);
    expect(plan.images.map((i) => i.source)).toContain('team/b:v1');
    expect(plan.blobs.find((b) => b.digest === d('c'))).toBeUndefined();
    // team/a holds blob b already (its images are there): team/b mounts it from there, nothing is uploaded.
    expect(plan.blobs.find((b) => b.digest === d('b'))).toMatchObject({ home: 'team/a', held: true, mounts: ['team/b', 'other/c'] });
  });

  it('leaves absent foreign layers out of the uploads but keeps the image', () => {
    const plan = planMigration(candidates, inv.manifests, { projectExists: () => true, tags: new Map() });
    const win = plan.images.find((i) => i.source === 'win/app:v1')!;
    expect(win.blobs).toEqual([d('a')]);
    expect(plan.blobs.find((b) => b.digest === d('7'))).toBeUndefined();
  });

  it.each([
    ['another shard comes first in source name order: mounted from there', 'aaa/first', 'team/a', 'aaa/first'],
    ['this shard comes first: uploaded here', 'zzz/last', 'team/a', undefined],
  ])('--shard: %s', (_, otherSource, home, sharedFrom) => {
    const elsewhere = new Map([[d('b'), { repository: `dest/${otherSource}`, sourceRepository: otherSource }]]);
    const plan = planMigration(candidates, inv.manifests, { projectExists: () => true, tags: new Map(), elsewhere });
    const shared = plan.blobs.find((b) => b.digest === d('b'))!;
    expect(shared.home).toBe(home);
    expect(shared.sharedFrom).toBe(sharedFrom && `dest/${sharedFrom}`);
    // Blobs no other shard needs are this shard's alone.
    expect(plan.blobs.filter((b) => b.sharedFrom !== undefined).map((b) => b.digest)).toEqual(sharedFrom ? [d('b')] : []);
    // What a dry run counts: a blob another shard sends is one more mount here, not an upload.
    expect(planTotals(plan)).toMatchObject(sharedFrom ? { blobsToUpload: 3, bytesToUpload: 60, mounts: 3 } : { blobsToUpload: 4, bytesToUpload: 1060, mounts: 2 });
  });

  it('--shard: a blob the destination holds already is mounted from its holder, not awaited from another shard', () => {
    const elsewhere = new Map([[d('b'), { repository: 'aaa/first', sourceRepository: 'aaa/first' }]]);
    const plan = planMigration(candidates, inv.manifests, { projectExists: () => true, tags: new Map(), elsewhere, holders: new Map([[d('b'), 'kept/there']]) });
    expect(plan.blobs.find((b) => b.digest === d('b'))).toMatchObject({ home: 'kept/there', held: true });
    expect(plan.blobs.find((b) => b.digest === d('b'))!.sharedFrom).toBeUndefined();
  });

  it('is plain data: it survives a JSON round trip unchanged', () => {
    const plan = planMigration(candidates, inv.manifests, { projectExists: () => true, tags: new Map() });
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });
});

describe('joinPlans', () => {
  const inv = inventory([
    tag('team/a', 'v1', d('1'), [[d('b'), 1000]]),
    tag('team/b', 'v1', d('2'), [[d('c'), 10]]),
    tag('other/c', 'v1', d('3'), [[d('e'), 20]]),
    tag('broken/x', 'v1', d('4'), [], { faults: [{ kind: 'missing-blob', message: 'layer gone', digest: d('f') }] }),
  ]);
  const planned = planMigration(selectCandidates(inv, HARBOR), inv.manifests, { projectExists: (p) => p === 'team', tags: new Map([['team/a:v1', d('1')]]) });
  // Every list of the plan holds something, so a list the join drops shows.
  const part: Plan = { ...planned, skipped: [planned.images[0]!], immutable: [{ ...planned.images[0]!, current: d('9'), rule: 'a rule' }], quotas: [{ project: 'other', charge: 20, limit: 100, used: 10, refused: false }], access: [{ project: 'other', needs: ['push'], missing: [] }] };
  const lists = (Object.keys(part) as Array<keyof Plan>).filter((key) => Array.isArray(part[key]));

  it('keeps every list of every batch', () => {
    for (const key of lists) expect(part[key], key).not.toHaveLength(0);
    const other: Plan = { ...part, projectsToCreate: ['more'], quotas: [{ project: 'other', charge: 30, limit: 100, used: 10, refused: true }], access: [{ project: 'other', needs: ['pull'], missing: ['pull'] }] };
    const joined = joinPlans([part, other]);
    for (const key of lists) {
      // A project's charges add up over the batches; refused in one, refused in all.
      if (key === 'quotas') {
        expect(joined.quotas).toEqual([{ project: 'other', charge: 50, limit: 100, used: 10, refused: true }]);
        continue;
      }
      // A project's needs are those of every batch.
      if (key === 'access') {
        expect(joined.access).toEqual([{ project: 'other', needs: ['push', 'pull'], missing: ['pull'] }]);
        continue;
      }
      const expected = key === 'projectsToCreate' ? ['more', 'other'] : [...(part[key] as readonly unknown[]), ...(other[key] as readonly unknown[])];
      expect(joined[key], key).toEqual(expected);
    }
    expect(Object.keys(joined).sort()).toEqual(Object.keys(part).sort());
  });
});

describe('planCharges (Harbor quota accounting)', () => {
  const inv = inventory([
    tag('team/a', 'v1', d('1'), [[d('b'), 1000], [d('c'), 10]]),
    tag('team/b', 'v1', d('2'), [[d('b'), 1000], [d('e'), 20]]),
    tag('other/c', 'v1', d('3'), [[d('b'), 1000]]),
    tag('kept/x', 'v1', d('4'), [[d('c'), 10]]),
    tag('kept/y', 'v1', d('5'), [[d('c'), 10], [d('f'), 300]]),
  ]);
  const plan = planMigration(selectCandidates(inv, HARBOR), inv.manifests, { projectExists: () => true, tags: new Map([['kept/x:v1', d('4')]]) });
  const manifestSize = () => 100;

  it('charges each project in full for every blob and manifest its images need, once per project, and nothing for what an image there already holds', () => {
    const charges = planCharges(plan, manifestSize);
    // team: b, c, e once each, two manifests; other pays for b again (a mount charges the full size); kept/y's c is
    // held by kept/x, there already: only f and the manifest.
    expect(Object.fromEntries([...charges].map(([p, c]) => [p, c.bytes]))).toEqual({ team: 1000 + 10 + 20 + 200, other: 1000 + 100, kept: 300 + 100 });
  });

  it('leaves out what an earlier batch charged', () => {
    const charges = planCharges(plan, manifestSize, (project, digest) => project === 'team' && digest === d('b'));
    expect(charges.get('team')!.bytes).toBe(10 + 20 + 200);
    expect(charges.get('other')!.bytes).toBe(1100);
  });
});
