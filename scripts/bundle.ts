/**
 * The last step of `npm run build`: bundles the program (dist/src, from tsc) with the packages it imports into
 * dist/bundle, which bin/regmigrate runs. Node 20 resolves, reads and compiles each ES module file on its own; a
 * push loads about 370 of them (ours, undici's, zod's, fast-glob's), and that cost a run 0.48 s of CPU before its
 * first request, against 0.30 s for the same code in a handful of files. Each command's module stays a chunk of
 * its own, loaded when the command runs (src/cli/main.ts), as in dist/src.
 *
 * Left out, imported from node_modules at run time: the packages only a few runs load (the AWS credential chain,
 * execa for skopeo and credential helpers), and those src/util/lazy-package.ts requires by name. meta.json beside
 * the chunks says which source files each chunk holds.
 */
import { build } from 'esbuild';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const project = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const outdir = path.join(project, 'dist/bundle');
// The module banner and the undici define, shared with the minimal client's bundle below.
const banner = { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" };
const define = { 'globalThis.Headers': 'undefined' };

rmSync(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: project,
  entryPoints: { main: path.join(project, 'dist/src/cli/main.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['@aws-sdk/*', 'execa'],
  // The CommonJS packages inside (undici, commander) require Node's own modules: an ES module has no `require`.
  banner,
  // undici's cookie helpers (lib/web/cookies/index.js) read `globalThis.Headers` when the module loads, and that one
  // read makes Node load its own built-in copy of undici, 20–30 ms of every run's start-up. The program never hands
  // Node's Headers to those helpers, so the read is taken out (test/startup.test.ts checks Node's copy stays unloaded).
  define,
  logLevel: 'warning',
  metafile: true,
  // No comments or indentation to parse at each start (names are kept, so stack traces still name functions); a
  // single non-ASCII character in a comment would also make V8 hold and scan its whole chunk as UTF-16. The licence
  // notices of the packages inside go to a .LEGAL.txt beside their chunk.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'external',
});
// Which source files each chunk holds: test/startup.test.ts reads it to tell what a command loads.
writeFileSync(path.join(outdir, 'meta.json'), JSON.stringify(result.metafile));

// The minimal undici client the cpu bench holds a push against (bench/push-undici.ts), bundled the same way: a
// reference has to be the cheapest we can make it, and loading undici's ~100 files one by one, with Node's own
// copy of undici on top, cost it ~0.09 s of CPU more at each start.
await build({
  absWorkingDir: project,
  entryPoints: { 'push-undici': path.join(project, 'dist/bench/push-undici.js') },
  outdir: path.join(project, 'dist/bench/bundle'),
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  banner,
  define,
  logLevel: 'warning',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'external',
});
