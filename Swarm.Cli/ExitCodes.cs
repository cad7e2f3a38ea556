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
}
