namespace Swarm.Node;

/// <summary>One store entry, as <c>swarm ls</c> shows it.</summary>
public sealed record ContentInfo(string Id, long Length, long Verified, bool Complete, bool Live, int Peers, long Uploaded, DateTime LastUsed, bool InUse, string[] Tasks)
{
    /// <summary>The OCI digest this content is (a blob or manifest the registry mirror or a preheat holds), if any.</summary>
    public string? Digest { get; init; }
}
