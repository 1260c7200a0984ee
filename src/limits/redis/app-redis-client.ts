/**
 * The app's own ioredis client (a Redis or a Cluster), as the options take it: typed by its shape, so that the published
 * types never need ioredis (an optional peer). The store uses it as the ioredis client it is.
 */
export interface AppRedisClient {
  evalsha(...args: never[]): unknown;
}
