import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, requireFromRepo } from './helpers.js';

// `engines`, the pinned packages and `npm install` agree: npm warns EBADENGINE for a package whose engines leave out
// the Node it installs on. The lockfile records each package's engines.

const semver = requireFromRepo('semver') as { satisfies(version: string, range: string): boolean; subset(sub: string, range: string): boolean };
const readJson = (file: string) => JSON.parse(readFileSync(join(repoRoot, file), 'utf8'));
const { engines } = readJson('package.json') as { engines: { node: string } };
const locked = Object.entries((readJson('package-lock.json') as { packages: Record<string, { dev?: boolean; engines?: { node?: string } }> }).packages)
  .filter(([path]) => path !== '')
  .map(([path, entry]) => ({ path, dev: entry.dev === true, node: entry.engines?.node }));

describe('engines', () => {
  it('every package a consumer installs with the agent runs on every Node its engines admit', () => {
    const shipped = locked.filter((p) => !p.dev);
    expect(shipped.length).toBeGreaterThan(0);
    const narrower = shipped.filter((p) => p.node !== undefined && !semver.subset(engines.node, p.node));
    expect(narrower.map((p) => `${p.path} (${p.node})`)).toEqual([]);
  });

  it(`npm install on this Node (${process.versions.node}) warns of no engine: the test:matrix run checks Node 22 and 24`, () => {
    expect(semver.satisfies(process.versions.node, engines.node)).toBe(true);
    expect(locked.length).toBeGreaterThan(100);
    const refusing = locked.filter((p) => p.node !== undefined && !semver.satisfies(process.versions.node, p.node));
    expect(refusing.map((p) => `${p.path} (${p.node})`)).toEqual([]);
  });
});
