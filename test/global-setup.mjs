// Before any test file runs: the app roots of the SDK majors that declare Node >= 22, installed once (see sdk-root.mjs).
import { onDemandRoots, sdkRoot } from './fixtures/sdk-root.mjs';

export default function setup() {
  for (const name of onDemandRoots) sdkRoot(name);
}
