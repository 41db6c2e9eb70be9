/** The page's calls to the control API: the verbs, sent with the session token the server put in the page. */
const token = document.querySelector<HTMLMetaElement>('meta[name="core-token"]')?.content ?? ""

/** POSTs to `url`; fails with the server's error message, or the HTTP status when it gave none. */
export const post = async (url: string): Promise<void> => {
  const response = await fetch(url, { method: "POST", headers: { "x-core-token": token }, credentials: "same-origin" })
  if (!response.ok) {
    const body = (await response.json().catch(() => ({}))) as { error?: string }
    throw new Error(body.error ?? `HTTP ${response.status}`)
  }
}
