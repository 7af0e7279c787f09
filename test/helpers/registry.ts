import { atEnd } from './teardown.js';
import { launchRegistry, type RegistryProcess, type RegistryProcessOptions } from '../../fixtures/registry-process.js';
import { tempDir } from './tmp.js';

export { freePort } from '../../fixtures/registry-process.js';
export type RunningRegistry = RegistryProcess;
export type RegistryOptions = Omit<RegistryProcessOptions, 'workDir'>;

/** A docker-registry for one test file, on a free loopback port, stopped after the file's tests. */
export async function startRegistry(options: RegistryOptions = {}): Promise<RunningRegistry> {
  const registry = await launchRegistry({ ...options, workDir: tempDir('regmigrate-registry-') });
  atEnd(() => registry.stop());
  return registry;
}
