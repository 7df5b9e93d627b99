/** Jest runs TypeScript through swc (fast, no type check); `tsc` in `npm test` does the type check. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }] },
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/dist/'],
  modulePathIgnorePatterns: ['<rootDir>/dist/'],
  maxWorkers: 2,
  reporters: ['default', '<rootDir>/.ci/summary-reporter.js'],
};
