namespace Swarm.Cli;

/// <summary>Exit codes of the swarm command (documented in the README).</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>Bad command line (unknown option, malformed address, id or rate).</summary>
    public const int Usage = 1;
    /// <summary>The content could not be fetched: no peer reachable, peers could not serve it, or the transfer stalled.</summary>
    public const int Unavailable = 2;
    /// <summary>A local problem: file not found, disk full, permissions, data directory in use.</summary>
    public const int LocalError = 3;
    /// <summary>The whole content did not match --digest; nothing was written.</summary>
    public const int VerificationFailed = 4;
    /// <summary>Stopped by Ctrl-C or SIGTERM before finishing.</summary>
    public const int Interrupted = 130;

    /// <summary>The exit code for a failure kind: the same whether the node ran the task or this process did.</summary>
    public static int For(Swarm.Node.FailureKind kind) => kind switch
    {
        Swarm.Node.FailureKind.Usage => Usage,
        Swarm.Node.FailureKind.Unavailable => Unavailable,
        Swarm.Node.FailureKind.Digest => VerificationFailed,
        Swarm.Node.FailureKind.Interrupted => Interrupted,
        _ => LocalError,
    };
}
