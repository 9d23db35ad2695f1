import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["e2e/**/*.test.ts"],
    globalSetup: ["e2e/setup.ts"],
    testTimeout: 90_000,
    hookTimeout: 60_000,
    // Each file starts its own browser and platform; two at a time fit two cores.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
