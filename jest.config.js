// Tiers (DESIGN.md): unit (pure, no root), kernel (real netlink in throwaway
// namespaces), e2e (built dist/bin executables, real traffic), and l2: tests
// that need 802.1q, bridge VLAN filtering, dummy or bonding, which this
// machine's kernel lacks. Its runner boots user-mode-linux and runs them
// there (test/l2/runner.ts); inside the guest (NODE_CNI_L2_INSIDE=1) jest's
// own runner runs them. test/kernel/netlink.test.ts runs in both tiers.
// Transpile only (tsconfig has isolatedModules); scripts/test.sh typechecks once with tsc.
// Source maps on (tsconfig.json turns them off for tsc), or failures point at the wrong lines.
const tsJest = ['ts-jest', { diagnostics: false, tsconfig: { sourceMap: true } }];
const base = { testEnvironment: 'node', transform: { '^.+\\.ts$': tsJest }, moduleFileExtensions: ['ts', 'js', 'json'] };
// testTimeout is a global option (ignored inside projects): kernel and e2e tests start processes.
module.exports = {
  testTimeout: 120000,
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...base, displayName: 'kernel', testMatch: ['<rootDir>/test/kernel/**/*.test.ts'] },
    { ...base, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'] },
    {
      ...base, displayName: 'l2', roots: ['<rootDir>/test'],
      testMatch: ['<rootDir>/test/l2/**/*.test.ts', '<rootDir>/test/kernel/netlink.test.ts'],
      runner: process.env.NODE_CNI_L2_INSIDE === '1' ? 'jest-runner' : '<rootDir>/test/l2/runner.ts',
    },
  ],
};
