// Runs an async job at most once at a time: a call while it runs asks for one more run after it (however many
// calls came) and gets the promise that settles when that run is done. useLoad's reloads go through it, so a
// poll or an event during a slow load queues one refresh instead of starting a load that discards the first.
export function oneAtATime(job: () => Promise<void>): () => Promise<void> {
  let inFlight: Promise<void> | null = null;
  let again = false;
  return () => {
    if (inFlight) {
      again = true;
      return inFlight;
    }
    inFlight = (async () => {
      do {
        again = false;
        await job();
      } while (again);
    })().finally(() => {
      inFlight = null;
    });
    return inFlight;
  };
}
