namespace Swarm.Node;

/// <summary>
/// How requests for the same thing share one transfer. The node lets every task of one key (a URL's task key, a content
/// id) wait for one fetch and see its progress; a CLI running a task itself has one request and runs it as it is.
/// </summary>
public interface IFetchSharing
{
    /// <summary>
    /// Runs <paramref name="fetch"/> for <paramref name="key"/>, or joins the one already running for the same key and
    /// <paramref name="variant"/> (what else decides the result: credentials, digest, fallback rule). The fetch reports to
    /// the observer it is given, which tells every request sharing it.
    /// </summary>
    Task<UrlFetchResult> RunAsync(string key, string variant, ITaskObserver observer, Func<ITaskObserver, CancellationToken, Task<UrlFetchResult>> fetch,
        CancellationToken cancellationToken);
}
