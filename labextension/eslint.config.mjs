// ESLint flat config: typescript-eslint's recommended rules over the extension's TypeScript.
// Formatting is prettier's job (`npm run lint` runs both; `npm run format` rewrites).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['lib/', 'node_modules/', '../jupyter_di/labextension/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['src/**/*.ts'],
    rules: {
      // an unused parameter named _x is a signal handler's or callback's fixed signature
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }
      ]
    }
  }
);
