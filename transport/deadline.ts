/** Waits for `promise` until `deadline` (epoch ms) at the latest, whatever it does; its timer never outlives the wait. */
export async function waitUntil(promise: Promise<unknown>, deadline: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))));
  try {
    await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
