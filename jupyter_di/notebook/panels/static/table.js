// jupyter-di editable table (anywidget ES module; no imports, nothing from a CDN).
// Traits: columns [{key,label,kind:readonly|text|bool|choice,options,bulk}], rows [{id,...}], note, id_label.
// Sends {type:"edit", ids, changes} and {type:"open", id}.

function h(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c);
  return node;
}

function editor(col, value, onChange) {
  if (col.kind === "bool") {
    const box = h("input", { type: "checkbox", "data-key": col.key });
    box.checked = !!value;
    box.addEventListener("change", () => onChange(box.checked));
    return box;
  }
  if (col.kind === "choice") {
    const sel = h("select", { "data-key": col.key }, (col.options || []).map((o) => h("option", { value: o, text: o })));
    sel.value = value ?? (col.options || [])[0];
    sel.addEventListener("change", () => onChange(sel.value));
    return sel;
  }
  if (col.kind === "text") {
    const input = h("input", { type: "text", value: value ?? "", "data-key": col.key, placeholder: "(default)" });
    input.addEventListener("change", () => onChange(input.value));
    return input;
  }
  return h("span", { text: value === undefined || value === null ? "" : String(value) });
}

function render({ model, el }) {
  const highlighted = new Set();
  let search = "";
  const root = h("div", { class: "jdi-table" });
  const searchBox = h("input", { type: "search", placeholder: "search by name", class: "jdi-search" });
  const counter = h("span", { class: "jdi-count" });
  const note = h("div", { class: "jdi-note" });
  const bulkBar = h("div", { class: "jdi-bulk" });
  const table = h("table");
  const thead = h("thead");
  const tbody = h("tbody");
  table.append(thead, tbody);
  root.append(h("div", { class: "jdi-toolbar" }, [searchBox, counter]), bulkBar, note, h("div", { class: "jdi-scroll" }, [table]));
  el.append(root);

  const send = (ids, changes) => model.send({ type: "edit", ids, changes });
  const visible = () => model.get("rows").filter((r) => String(r.id).toLowerCase().includes(search));

  function drawBulk() {
    bulkBar.replaceChildren();
    const cols = model.get("columns").filter((c) => c.bulk);
    if (!cols.length) return;
    bulkBar.append(h("span", { text: `Bulk edit ${highlighted.size} highlighted: ` }));
    for (const col of cols) {
      let pending = col.kind === "bool" ? true : (col.options || [""])[0];
      const ed = editor(col, pending, (v) => { pending = v; });
      const apply = h("button", { text: "apply", title: `set ${col.label} on the highlighted rows` });
      apply.disabled = highlighted.size === 0;
      apply.addEventListener("click", () => send([...highlighted], { [col.key]: pending }));
      bulkBar.append(h("label", { class: "jdi-bulk-item" }, [col.label + " ", ed, apply]));
    }
  }

  function drawHead() {
    const all = h("input", { type: "checkbox", title: "highlight all shown rows" });
    all.addEventListener("change", () => {
      for (const r of visible()) all.checked ? highlighted.add(r.id) : highlighted.delete(r.id);
      drawBody();
      drawBulk();
    });
    thead.replaceChildren(h("tr", {}, [h("th", {}, [all]), h("th", { text: model.get("id_label") }),
      ...model.get("columns").map((c) => h("th", { text: c.label }))]));
  }

  function drawBody() {
    const rows = visible();
    const frag = document.createDocumentFragment();
    for (const row of rows) {
      const mark = h("input", { type: "checkbox" });
      mark.checked = highlighted.has(row.id);
      mark.addEventListener("change", () => {
        mark.checked ? highlighted.add(row.id) : highlighted.delete(row.id);
        mark.closest("tr").classList.toggle("jdi-hl", mark.checked);
        drawBulk();
      });
      const name = h("a", { href: "#", text: row.id, onclick: (e) => { e.preventDefault(); model.send({ type: "open", id: row.id }); } });
      const cells = model.get("columns").map((col) => h("td", {}, [editor(col, row[col.key], (v) => send([row.id], { [col.key]: v }))]));
      frag.append(h("tr", { "data-id": row.id, class: highlighted.has(row.id) ? "jdi-hl" : "" }, [h("td", {}, [mark]), h("td", {}, [name]), ...cells]));
    }
    tbody.replaceChildren(frag);
    counter.textContent = ` ${rows.length} of ${model.get("rows").length}`;
  }

  searchBox.addEventListener("input", () => { search = searchBox.value.toLowerCase(); drawBody(); });
  const drawNote = () => { note.textContent = model.get("note"); };
  model.on("change:rows", () => {
    const ids = new Set(model.get("rows").map((r) => r.id));
    for (const id of [...highlighted]) if (!ids.has(id)) highlighted.delete(id);
    drawBody();
    drawBulk();
  });
  model.on("change:columns", () => { drawHead(); drawBody(); drawBulk(); });
  model.on("change:note", drawNote);
  drawHead(); drawBody(); drawBulk(); drawNote();
}

export default { render };
