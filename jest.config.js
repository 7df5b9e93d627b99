/** Jest runs TypeScript through swc (fast, no type check); `tsc` in `npm test` does the type check. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/raft', '<rootDir>/metaserver', '<rootDir>/client', '<rootDir>/deploy', '<rootDir>/chaos-tests'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }] },
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  maxWorkers: 2,
  reporters: ['default', '<rootDir>/.ci/summary-reporter.js'],
};
