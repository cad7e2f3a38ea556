namespace Swarm.Node;

/// <summary>No sharing: the one request runs its fetch itself.</summary>
public sealed class NoFetchSharing : IFetchSharing
{
    public static readonly NoFetchSharing Instance = new();

    public Task<UrlFetchResult> RunAsync(string key, string variant, ITaskObserver observer, Func<ITaskObserver, CancellationToken, Task<UrlFetchResult>> fetch,
        CancellationToken cancellationToken) => fetch(observer, cancellationToken);
}
