using Swarm.Core.Exchange;
using Swarm.Core.Sources;

namespace Swarm.Node;

/// <summary>
/// The one mapping from what went wrong to what the caller must do about it: used for the node's tasks (their failure
/// kind in the control API) and by the CLI (its exit code), so the same failure means the same thing either way.
/// </summary>
public static class TaskFailure
{
    public static FailureKind Classify(Exception e) => e switch
    {
        OperationCanceledException => FailureKind.Interrupted,
        ArgumentException or FormatException or ConfigException => FailureKind.Usage,
        PeerUnavailableException or OriginException or IngesterGoneException or RegistryException => FailureKind.Unavailable,
        DigestMismatchException => FailureKind.Digest,
        _ => FailureKind.Local,
    };

    /// <summary>Whether the failure is one Swarm knows and words itself (else its text is not fit to show as it is).</summary>
    public static bool IsExpected(Exception e) =>
        Classify(e) != FailureKind.Local || e is IOException or InvalidDataException or UnauthorizedAccessException;
}
