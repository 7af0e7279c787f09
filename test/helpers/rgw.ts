import { launchRgw, type Rgw, type RgwOptions } from '../../fixtures/rgw-process.js';
import { atEnd } from './teardown.js';

export type RunningRgw = Rgw;

/**
 * A throwaway Ceph RADOS Gateway (a real S3 server) for one test file: its own cluster, directory and loopback
 * ports, killed and removed after the file's tests (fixtures/rgw-process.ts says how it is set up).
 */
export async function startRgw(options: RgwOptions = {}): Promise<RunningRgw> {
  const rgw = await launchRgw(options);
  atEnd(() => rgw.stop());
  return rgw;
}
