namespace Swarm.Node;

/// <summary>Rate limits to set at run time (<c>swarm limit</c>): e.g. 10MiB/s, 100mbit, 0 for none; null leaves one as it is.</summary>
public sealed record LimitsRequest(string? UploadRate, string? DownloadRate);
