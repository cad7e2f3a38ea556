using Swarm.Core.Sources;

namespace Swarm.Node;

/// <summary>What a client asks the node to do: fetch (<c>get</c>) or ingest and serve (<c>seed</c>) a source.</summary>
public sealed record TaskRequest
{
    public TaskKind Kind { get; init; } = TaskKind.Get;
    /// <summary>swarm://id, an http(s) URL, or (seed) a file path on the node's host.</summary>
    public required string Source { get; init; }
    /// <summary>
    /// Where the verified file goes (absolute path); none: keep it in the store only. Without <see cref="OutputToken"/> the node
    /// writes this path itself, as the node's user and in the node's view of the file system; with one, the path is the
    /// client's and only shown.
    /// </summary>
    public string? Output { get; init; }
    /// <summary>
    /// The output file the client opened itself and handed over on the output socket (<see cref="HandedOutputs"/>): the token it
    /// got back. The node writes the verified bytes into that file; the client gives it its name.
    /// </summary>
    public string? OutputToken { get; init; }
    public string? Tag { get; init; }
    public string[] Filters { get; init; } = [];
    public string[] Headers { get; init; } = [];
    public string? Digest { get; init; }
    public bool NoBackToSource { get; init; }
    public string[] Peers { get; init; } = [];
    /// <summary>For <c>seed oci://…</c>: only this platform of an index (os/arch[/variant]).</summary>
    public string? Platform { get; init; }

    /// <summary>
    /// The request as it may be shown (<c>ls</c>, <c>status</c>, the control API): the source through
    /// <see cref="TaskKey.Redact(string, IReadOnlyCollection{string})"/>, headers as <c>Name: REDACTED</c>.
    /// </summary>
    public TaskRequest Redacted(SecretRedactor redactor) => this with { Source = redactor.Source, Headers = [.. redactor.Headers], OutputToken = null };
}
