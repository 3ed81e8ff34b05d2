// Three tiers (DESIGN.md): unit (pure, no root), kernel (real netlink in
// throwaway namespaces), e2e (built dist/bin executables, real traffic).
// Transpile only (tsconfig has isolatedModules); scripts/test.sh typechecks once with tsc.
const tsJest = ['ts-jest', { diagnostics: false }];
const base = { testEnvironment: 'node', transform: { '^.+\\.ts$': tsJest }, moduleFileExtensions: ['ts', 'js', 'json'] };
// testTimeout is a global option (ignored inside projects): kernel and e2e tests start processes.
module.exports = {
  testTimeout: 120000,
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...base, displayName: 'kernel', testMatch: ['<rootDir>/test/kernel/**/*.test.ts'] },
    { ...base, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'] },
  ],
};
