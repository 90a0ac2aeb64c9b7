/**
 * The panels' table module, shipped once with the extension instead of inside every table widget.
 *
 * Each table widget's `_esm` (jupyter_di/notebook/panels/table.py) is one line that takes the
 * module registered here under `globalThis.jupyterDiTable`; the module itself is the package's
 * own table.js (one source for both), bundled into the extension with its CSS.  A client without
 * the extension finds no module there: the one-liner asks the kernel, which then sends the whole
 * script inline to that widget only.
 */
import table from '../../jupyter_di/notebook/panels/static/table.js';
import '../../jupyter_di/notebook/panels/static/table.css';

/** Where the table widgets' one-line `_esm` looks for the module (SHARED_ESM in table.py). */
export const TABLE_GLOBAL = 'jupyterDiTable';

/** Register the table module for every table widget of this page. */
export function shareTableModule(): void {
  (globalThis as Record<string, unknown>)[TABLE_GLOBAL] = table;
}
