namespace Swarm.Node;

/// <summary>
/// The node's fetches in flight, one per key (a URL's task key, a content id): a task whose key is being fetched waits for
/// that fetch instead of starting its own, then does its own checks and export. Requests with the same key that differ in
/// what decides the result (their <c>variant</c>: credentials, digest, fallback) do not share it: they wait for it to end
/// and then fetch for themselves. A task that is cancelled stops waiting; the fetch stops only when no task waits for it.
/// </summary>
public sealed class SharedFetches<TListener, TResult> where TListener : class
{
    private readonly Dictionary<string, SharedFetch<TListener, TResult>> _running = [];
    private readonly CancellationToken _stopping;

    /// <param name="stopping">Stops every fetch (the node is stopping).</param>
    public SharedFetches(CancellationToken stopping) => _stopping = stopping;

    /// <summary>How many fetches are running now.</summary>
    public int Count
    {
        get { lock (_running) return _running.Count; }
    }

    /// <summary>
    /// Waits for the fetch of <paramref name="key"/>, starting it with <paramref name="start"/> when none runs (it is given
    /// the shared fetch, to report to every waiting task, and its own token).
    /// </summary>
    public async Task<TResult> RunAsync(string key, string variant, TListener listener,
        Func<SharedFetch<TListener, TResult>, CancellationToken, Task<TResult>> start, CancellationToken cancellationToken)
    {
        while (true)
        {
            SharedFetch<TListener, TResult>? joined = null;
            Task? other = null;
            lock (_running)
            {
                if (_running.TryGetValue(key, out var found) && !found.Run.IsCompleted)
                {
                    if (found.Variant == variant && found.TryJoin(listener)) joined = found;
                    else other = found.Run;
                }
                else
                {
                    joined = new SharedFetch<TListener, TResult>(variant, listener, _stopping);
                    _running[key] = joined;
                    var fetch = joined;
                    fetch.Run = Task.Run(async () =>
                    {
                        try
                        {
                            return await start(fetch, fetch.Token).ConfigureAwait(false);
                        }
                        finally
                        {
                            lock (_running)
                            {
                                if (_running.TryGetValue(key, out var now) && now == fetch) _running.Remove(key);
                            }
                            fetch.Dispose();
                        }
                    }, CancellationToken.None);
                }
            }
            if (joined == null)
            {
                // Another variant's fetch (or one being stopped): let it end, then look again.
                try
                {
                    await other!.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception) when (!cancellationToken.IsCancellationRequested) { } // its failure is not this request's
                continue;
            }
            try
            {
                return await joined.Run.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                joined.Leave(listener);
            }
        }
    }
}
