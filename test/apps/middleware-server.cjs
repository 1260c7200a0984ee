// A web app that bills each request's LLM calls to the request's tenant (the x-tenant header; none without it), served
// by node:http with a Connect-style chain or by Fastify. It sends itself three requests over ONE keep-alive connection:
// "victim", then two without a tenant. Each request makes two OpenAI calls: one started before the handler's first
// await, one after reading the body. Prints, per request, whether its connection was reused and the tenant of each
// of its calls' events:
//
//   RESULT {"reused":false,"status":200,"tenants":["victim","victim"]}
//
// argv[2], how the tenant is scoped: middleware | async-resolver | set-tenant (the enterWith way) | fastify-onRequest |
// fastify-preHandler.
const http = require('node:http');
const { Meter } = require('llm-meter');

const scope = process.argv[2];
const events = [];
const meter = new Meter({ handleExit: false, onEvent: (e) => events.push(e) });
meter.patchAll();
const { OpenAI } = require('openai');
const openai = new OpenAI({ apiKey: 'k', baseURL: process.env.OPENAI_BASE_URL, maxRetries: 0 });

const tenantOf = (req) => req.headers['x-tenant'];
const complete = (content) => openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content }] });

/** The route's work: one call started before the handler's first await, one with the request's body. */
async function twoCalls(body) {
  await complete('first');
  await complete(await body());
}

async function readBody(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body;
}

/** node:http with a Connect-style chain: the tenant middleware, then the route. */
function connectServer(tenantMiddleware) {
  const route = (req, res) => {
    twoCalls(() => readBody(req)).then(
      () => res.end('ok'),
      (err) => {
        res.statusCode = 500;
        res.end(String(err));
      },
    );
  };
  const chain = [tenantMiddleware, route];
  return http.createServer((req, res) => {
    let i = 0;
    const next = (err) => {
      if (err !== undefined) {
        res.statusCode = 500;
        return res.end(String(err));
      }
      chain[i++](req, res, next);
    };
    next();
  });
}

async function fastifyServer(hook) {
  const fastify = require('fastify')();
  fastify.addHook(hook, meter.middleware(tenantOf));
  fastify.post('/', async (request) => {
    await twoCalls(async () => JSON.stringify(request.body));
    return 'ok';
  });
  await fastify.ready();
  return fastify.server;
}

function server() {
  if (scope === 'middleware') return connectServer(meter.middleware(tenantOf));
  if (scope === 'async-resolver') return connectServer(meter.middleware(async (req) => tenantOf(req)));
  if (scope === 'set-tenant') {
    return connectServer((req, res, next) => {
      const tenant = tenantOf(req);
      if (tenant !== undefined) meter.setTenant(tenant);
      next();
    });
  }
  if (scope === 'fastify-onRequest') return fastifyServer('onRequest');
  if (scope === 'fastify-preHandler') return fastifyServer('preHandler');
  throw new Error(`unknown scope ${scope}`);
}

function send(port, agent, tenant) {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', ...(tenant === undefined ? {} : { 'x-tenant': tenant }) };
    const req = http.request({ port, method: 'POST', path: '/', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ reused: req.reusedSocket, status: res.statusCode }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ prompt: 'p'.repeat(100_000) }));
  });
}

async function main() {
  const app = await server();
  await new Promise((resolve) => app.listen(0, '127.0.0.1', resolve));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (const tenant of ['victim', undefined, undefined]) {
    const seen = events.length;
    const { reused, status } = await send(app.address().port, agent, tenant);
    while (status === 200 && events.length < seen + 2) await new Promise((resolve) => setImmediate(resolve));
    console.log(`RESULT ${JSON.stringify({ reused, status, tenants: events.slice(seen).map((e) => e.tenant_id ?? null) })}`);
  }
  agent.destroy();
  app.close();
  await meter.shutdown();
  console.log(`NODE ${process.versions.node}`);
}
main();
