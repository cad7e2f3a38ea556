namespace Swarm.Node;

/// <summary>
/// One running fetch that several tasks wait for (see <see cref="SharedFetches{TListener, TResult}"/>): who waits for it
/// now, and the token that stops it once none does.
/// </summary>
public sealed class SharedFetch<TListener, TResult> : IDisposable where TListener : class
{
    private readonly List<TListener> _listeners = [];
    private readonly CancellationTokenSource _cancel;

    internal SharedFetch(string variant, TListener first, CancellationToken stopping)
    {
        Variant = variant;
        _listeners.Add(first);
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(stopping);
    }

    /// <summary>What else, besides the key, requests must agree on to share this fetch (credentials, digest, fallback).</summary>
    internal string Variant { get; }
    internal CancellationToken Token => _cancel.Token;
    internal Task<TResult> Run { get; set; } = Task.FromException<TResult>(new InvalidOperationException("the shared fetch has not started"));

    /// <summary>The tasks waiting for the fetch now (a copy).</summary>
    public IReadOnlyList<TListener> Listeners
    {
        get { lock (_listeners) return [.. _listeners]; }
    }

    /// <summary>Applies <paramref name="action"/> to every waiting task (progress, state).</summary>
    public void Each(Action<TListener> action)
    {
        foreach (var l in Listeners) action(l);
    }

    /// <summary>Adds a waiter; false when the fetch is already being stopped because its last waiter left.</summary>
    internal bool TryJoin(TListener listener)
    {
        lock (_listeners)
        {
            if (_cancel.IsCancellationRequested || Run.IsCompleted) return false;
            _listeners.Add(listener);
            return true;
        }
    }

    /// <summary>Removes a waiter; the fetch is cancelled when it was the last one (its verified pieces stay in the store).</summary>
    internal void Leave(TListener listener)
    {
        lock (_listeners)
        {
            _listeners.Remove(listener);
            if (_listeners.Count > 0 || Run.IsCompleted) return;
            try
            {
                _cancel.Cancel();
            }
            catch (ObjectDisposedException) { } // the fetch ended meanwhile
        }
    }

    public void Dispose() => _cancel.Dispose();
}
