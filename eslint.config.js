import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** src/'s layers, bottom to top; a layer may import only those before it (docs/ARCHITECTURE.md). */
const LAYERS = ['lib', 'backends', 'db', 'accounts', 'jobs', 'spaces', 'storage', 'sync', 'http', 'app'];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', 'coverage/', 'native/*/build/', 'bench/scratch/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': 'off',
    },
  },
  {
    // Tests read JSON bodies of many shapes; typing each one adds nothing.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  // The layers, bottom to top (docs/ARCHITECTURE.md): each imports only layers below it (type
  // imports included), nothing imports main.ts, and above backends/ the native file work is reached
  // only through backends/fsThreads.ts.
  ...LAYERS.map((layer, i) => ({
    files: [`src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...LAYERS.slice(i + 1).map((above) => ({
              group: [`**/${above}/**`],
              message: `${layer}/ is below ${above}/ and must not import it (docs/ARCHITECTURE.md)`,
            })),
            { group: ['**/main.ts'], message: 'nothing imports the CLI entry' },
            ...(i > LAYERS.indexOf('backends')
              ? [
                  {
                    group: ['**/backends/fsNative.ts', '**/backends/fsPortable.ts'],
                    message: 'reach the file system work through backends/fsThreads.ts',
                  },
                ]
              : []),
          ],
        },
      ],
    },
  })),
  // The native module's loader is plain CommonJS, as Node's addons are loaded.
  {
    files: ['native/**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
