using System.Diagnostics;
using System.Net;
using Swarm.Core.Content;

namespace Swarm.Core.Dht;

/// <summary>
/// What an iterative lookup found and what it cost. <see cref="Closest"/> holds the (up to k) closest nodes that answered.
/// <see cref="Rounds"/> is the longest chain of referrals followed (1 = only nodes from our own table were asked).
/// </summary>
public sealed record LookupResult(Hash256 Target, IReadOnlyList<Contact> Closest, int Rounds, int Queries, int Answered, int Failed, TimeSpan Duration, bool TimedOut);

/// <summary>
/// Kademlia's iterative lookup. Keeps every node seen sorted by distance to the target; asks the closest not-yet-asked ones
/// among the k closest that have not failed, α at a time. A query unanswered after <see cref="DhtOptions.LookupWidenAfter"/>
/// is "slow": it stops counting against α and, while it stays silent, is treated as failed, so the lookup widens to the next
/// closest nodes instead of waiting a full RPC timeout for each dead node (a late answer still counts). It ends when the k
/// closest nodes seen have all answered and nothing is in flight within its answer window, or at the hard timeout
/// (returning what it has).
/// </summary>
internal static class Lookup
{
    /// <summary>Asks one node; returns the closer nodes it named, or null if it did not answer usefully. Throws only when cancelled.</summary>
    public delegate Task<IReadOnlyList<Contact>?> Query(Contact node, CancellationToken cancellationToken);

    private enum State { NotAsked, InFlight, Answered, Failed }

    private sealed class Candidate(Contact contact, Hash256 distance, int hops)
    {
        public readonly Contact Contact = contact;
        public readonly Hash256 Distance = distance;
        public readonly int Hops = hops;
        public State State;
        public long Started;
        public bool Widened;
        public Task<IReadOnlyList<Contact>?>? Task;
    }

    public static async Task<LookupResult> RunAsync(Hash256 self, IPEndPoint? selfEndPoint, Hash256 target, IEnumerable<Contact> seeds, DhtOptions options, Query query, CancellationToken cancellationToken)
    {
        long start = Stopwatch.GetTimestamp();
        int k = options.BucketSize;
        var candidates = new List<Candidate>();
        var seenIds = new HashSet<Hash256> { self };
        var seenEndPoints = new HashSet<IPEndPoint>();
        if (selfEndPoint != null) seenEndPoints.Add(selfEndPoint);

        void Consider(Contact c, int hops)
        {
            var ep = DhtAddress.Normalize(c.EndPoint);
            // One query per id and per address: a node naming many ids at one address gets asked once.
            if (!seenIds.Add(c.Id) || !seenEndPoints.Add(ep)) return;
            var candidate = new Candidate(c with { EndPoint = ep }, target.Xor(c.Id), hops);
            int at = candidates.BinarySearch(candidate, CandidateOrder.Instance);
            candidates.Insert(at < 0 ? ~at : at, candidate);
        }

        foreach (var s in seeds) Consider(s, 0);

        using var lookupCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        lookupCts.CancelAfter(options.LookupTimeout);
        var inFlight = new List<Candidate>();
        int queries = 0, answered = 0, failed = 0, rounds = 0;
        bool timedOut = false;

        while (true)
        {
            int active = 0;
            foreach (var c in inFlight) if (!c.Widened) active++;
            int considered = 0;
            foreach (var c in candidates)
            {
                if (active >= options.Alpha) break;
                // Failed nodes, and slow ones for as long as they stay silent, are not among "the k closest".
                if (c.State == State.Failed || (c.State == State.InFlight && c.Widened)) continue;
                if (considered++ >= k) break;
                if (c.State != State.NotAsked) continue;
                c.State = State.InFlight;
                c.Started = Stopwatch.GetTimestamp();
                c.Task = query(c.Contact, lookupCts.Token);
                inFlight.Add(c);
                queries++;
                active++;
            }
            // Done: the k closest (not failed, not slow) have all answered and no query is within its answer window.
            // Queries past the window are abandoned; their nodes are charged a failure when their RPC times out.
            if (active == 0) break;

            // Wait for an answer, or for the oldest counted query to become "slow" (then α widens).
            var waitFor = new List<Task>(inFlight.Count + 1);
            TimeSpan? untilWiden = null;
            foreach (var c in inFlight)
            {
                waitFor.Add(c.Task!);
                if (c.Widened) continue;
                var left = options.LookupWidenAfter - Stopwatch.GetElapsedTime(c.Started);
                if (untilWiden == null || left < untilWiden) untilWiden = left;
            }
            if (untilWiden is { } delay) waitFor.Add(Task.Delay(delay > TimeSpan.Zero ? delay : TimeSpan.Zero, lookupCts.Token));
            await Task.WhenAny(waitFor).ConfigureAwait(false);
            if (lookupCts.IsCancellationRequested)
            {
                cancellationToken.ThrowIfCancellationRequested();
                timedOut = true;
                break;
            }

            for (int i = inFlight.Count - 1; i >= 0; i--)
            {
                var c = inFlight[i];
                if (!c.Task!.IsCompleted)
                {
                    if (!c.Widened && Stopwatch.GetElapsedTime(c.Started) >= options.LookupWidenAfter) c.Widened = true;
                    continue;
                }
                inFlight.RemoveAt(i);
                if (c.Task.IsFaulted) _ = c.Task.Exception; // observed; a failing query is just a failed node
                var closer = c.Task.IsCompletedSuccessfully ? c.Task.Result : null;
                if (closer == null)
                {
                    c.State = State.Failed;
                    failed++;
                    continue;
                }
                c.State = State.Answered;
                answered++;
                rounds = Math.Max(rounds, c.Hops + 1);
                foreach (var n in closer) Consider(n, c.Hops + 1);
            }
        }

        // Abandoned queries run on to their RPC timeout (so dead nodes are charged a failure); nobody awaits them.
        foreach (var c in inFlight) _ = c.Task!.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

        var closest = new List<Contact>(k);
        foreach (var c in candidates)
        {
            if (closest.Count >= k) break;
            if (c.State == State.Answered) closest.Add(c.Contact);
        }
        return new LookupResult(target, closest, rounds, queries, answered, failed, Stopwatch.GetElapsedTime(start), timedOut);
    }

    private sealed class CandidateOrder : IComparer<Candidate>
    {
        public static readonly CandidateOrder Instance = new();
        public int Compare(Candidate? x, Candidate? y) => x!.Distance.CompareTo(y!.Distance);
    }
}
