// The whole suite again under Node 22 and 24 (binaries from npm, cached as the tests' own are), one after the other:
// `npm test` runs it on the Node at hand, this on the others. Tests that run apps on every Node of the matrix run them
// on the Node under test only here.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canFetchNode, fetchNode } from './fixtures/node-binary.mjs';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const VERSIONS = (process.env.NODE_MATRIX_VERSIONS ?? '22.23.3,24.22.3').split(',');

if (!canFetchNode) {
  console.log(`node-matrix: npm has no build of node for ${process.platform}-${process.arch}; the suite ran on this Node only`);
  process.exit(0);
}
for (const version of VERSIONS) {
  const node = fetchNode(version);
  console.log(`\n== the suite on Node ${version} ==\n`);
  const run = spawnSync(node, [join(repoRoot, 'node_modules/vitest/vitest.mjs'), 'run', '--config', 'test/vitest.config.mjs', ...process.argv.slice(2)], {
    cwd: repoRoot,
    stdio: 'inherit',
    env: { ...process.env, NODE_MATRIX_RUN: 'this-node-only' },
  });
  if (run.status !== 0) {
    console.error(`node-matrix: the suite failed on Node ${version}`);
    process.exit(run.status ?? 1);
  }
}
