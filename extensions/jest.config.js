/** Unit tests of the pure helpers (src/__tests__/*.spec.ts), run by ts-jest in node. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  testRegex: 'src/__tests__/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  },
  collectCoverageFrom: ['src/format.ts'],
  coverageReporters: ['text-summary']
};
