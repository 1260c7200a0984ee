// Loader hooks that change nothing: every resolve and load still crosses to Node 20's loader thread and back.
export async function resolve(specifier, context, nextResolve) {
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  return nextLoad(url, context);
}
