using Swarm.Core.Content;
using Swarm.Core.Exchange;

namespace Swarm.Node;

/// <summary>
/// How the node's tasks share fetches: every task of one key (a resumed one included) waits for one fetch
/// (<see cref="SharedFetches{TListener, TResult}"/>) and each sees its progress; the origin bytes of the one fetch count
/// once towards the node's total. Each task then checks and exports for itself.
/// </summary>
public sealed class NodeFetchSharing(SharedFetches<RunningTask, UrlFetchResult> fetches, RunningTask task, Action<long> countOrigin) : IFetchSharing
{
    public Task<UrlFetchResult> RunAsync(string key, string variant, ITaskObserver observer, Func<ITaskObserver, CancellationToken, Task<UrlFetchResult>> fetch,
        CancellationToken cancellationToken) =>
        fetches.RunAsync(key, variant, task, (shared, token) => fetch(new Fanout(shared, countOrigin), token), cancellationToken);

    /// <summary>Tells every task waiting for the fetch.</summary>
    private sealed class Fanout(SharedFetch<RunningTask, UrlFetchResult> shared, Action<long> countOrigin) : ITaskObserver
    {
        private long _seen;

        public void OnContent(ContentId id) => shared.Each(t => t.OnContent(id));

        public void OnOrigin(long done, long total)
        {
            long delta = RunningTask.Advance(ref _seen, done);
            if (delta > 0) countOrigin(delta);
            shared.Each(t => t.ShowShared(done, total, done));
        }

        public void OnIngest(long done, long total) => shared.Each(t => t.OnIngest(done, total));

        public void OnSwarm(TransferProgress progress) => shared.Each(t => t.OnSwarm(progress));

        public void Say(string line)
        {
            // Said once, naming every task it is for (the task's Say drops a leading "swarm: " and scrubs).
            var listeners = shared.Listeners;
            if (listeners.Count == 0) return;
            listeners[0].Say(line + (listeners.Count > 1 ? $" (for tasks {string.Join(",", listeners.Select(t => t.Id))})" : ""));
        }
    }
}
