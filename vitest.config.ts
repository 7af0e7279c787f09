import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Each file starts its own registries on free loopback ports; two cores, so two at a time.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
