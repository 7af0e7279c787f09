import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { notice } from '../src/cli/transfer-command.js';
import type { Notice } from '../src/util/notice.js';

function render(logFormat: 'human' | 'json', n: Notice): string {
  const stderr = new PassThrough();
  notice({ logFormat }, { stderr }, n);
  return String(stderr.read() ?? '');
}

describe('notices', () => {
  it.each<[Notice, string]>([
    [{ level: 'error', message: 'error: project team refused; its images are skipped' }, 'error'],
    [{ level: 'warn', message: 'registry.example did not answer; retrying' }, 'warn'],
    [{ level: 'info', message: 'work directory kept: /tmp/w' }, 'info'],
    // The level is the notice's, whatever the words say.
    [{ level: 'info', message: 'error-prone mirror skipped' }, 'info'],
  ])('a JSON log record takes its level from the notice: %j', (n, level) => {
    const record = JSON.parse(render('json', n)) as Record<string, unknown>;
    expect(record).toMatchObject({ level, event: 'notice', message: n.message });
  });

  it('prints the message as it is on a human log', () => {
    expect(render('human', { level: 'error', message: 'error: metrics could not be written: EACCES' })).toBe('regmigrate: error: metrics could not be written: EACCES\n');
  });
});
