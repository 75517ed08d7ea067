/** conveyor's version, as in package.json (test/version.test.ts keeps them equal). */
export const VERSION = '0.1.0';
