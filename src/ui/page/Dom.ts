/** Building the page's HTML and SVG elements. */
const SVG_NS = "http://www.w3.org/2000/svg"

/** What `h` accepts as a child; `null`, `undefined` and `false` are left out, so a child can be conditional. */
export type Child = Node | string | null | undefined | false

/** An HTML element with its attributes and children. */
export const h = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: ReadonlyArray<Child>
): HTMLElementTagNameMap[K] => {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v)
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c)
  return el
}

/** An SVG element with its attributes and children. */
export const s = (
  tag: string,
  attrs: Record<string, string | number> = {},
  ...children: ReadonlyArray<Node>
): SVGElement => {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v))
  el.append(...children)
  return el
}

/** An SVG `text` element. */
export const sText = (text: string, attrs: Record<string, string | number>) => {
  const el = s("text", attrs)
  el.textContent = text
  return el
}
