using System.Text.Json.Serialization;

namespace Swarm.Node;

/// <summary>Why a task failed, as far as the caller must act on it (the CLI turns it into its exit code).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<FailureKind>))]
public enum FailureKind
{
    /// <summary>The request is wrong (a bad id, URL, digest, header, address): fix the command.</summary>
    [JsonStringEnumMemberName("usage")] Usage,
    /// <summary>The content could not be had: no peer, no origin, the origin refused, the transfer stalled.</summary>
    [JsonStringEnumMemberName("unavailable")] Unavailable,
    /// <summary>A local problem: disk full, permissions, a file gone, the data directory in use.</summary>
    [JsonStringEnumMemberName("local")] Local,
    /// <summary>The whole content did not match the digest asked for; nothing was written.</summary>
    [JsonStringEnumMemberName("digest")] Digest,
    /// <summary>Stopped before it finished (Ctrl-C, SIGTERM).</summary>
    [JsonStringEnumMemberName("interrupted")] Interrupted,
}
