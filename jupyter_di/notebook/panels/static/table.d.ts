// Types of table.js for the lab extension, which bundles the module once (labextension/src/tablemodule.ts).
declare const table: {
  render(context: { model: unknown; el: HTMLElement }): void;
};
export default table;
