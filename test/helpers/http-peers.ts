// HTTP peers for the injected-pod tests, run with the Node of our image: the proxy there is squid, which speaks
// HTTP and says it relayed a request in the Via header it adds. Each server answers one JSON line naming itself
// and what it was sent; the client prints the answer.

/** `node -e` source of a server on [::]:$PORT answering {label: $LABEL, via, from} and logging each request. */
export const HTTP_SERVER = [
  "require('http').createServer((q,s)=>{const r=JSON.stringify({label:process.env.LABEL,path:q.url,via:q.headers.via??null,from:q.socket.remoteAddress});",
  "console.log(r);s.end(r)}).listen(Number(process.env.PORT),'::',()=>console.log('{\"ready\":true}'))",
].join('')

/** `node -e` source of a client that GETs argv[1] and prints {status, body} (or {error}). */
export const HTTP_CLIENT = [
  'fetch(process.argv[1],{signal:AbortSignal.timeout(10000)})',
  '.then(async r=>console.log(JSON.stringify({status:r.status,body:JSON.parse(await r.text())})))',
  '.catch(e=>{console.log(JSON.stringify({error:String(e.cause??e)}));process.exitCode=1})',
].join('')

export interface Answer {
  readonly status?: number
  readonly body?: { label: string; path: string; via: string | null; from: string }
  readonly error?: string
}
