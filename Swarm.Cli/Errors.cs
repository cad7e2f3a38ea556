using Swarm.Core.Sources;
using Swarm.Node;

namespace Swarm.Cli;

internal static class Errors
{
    /// <summary>
    /// Prints one line saying what failed and returns the matching exit code. <paramref name="scrub"/> (a request's
    /// <see cref="Swarm.Core.Sources.SecretRedactor.Scrub"/>) takes header values and signatures out of the message.
    /// </summary>
    public static int Report(string command, Exception e, Func<string?, string>? scrub = null)
    {
        // The kind (and so the exit code) comes from the one mapping the node's tasks use too; the CLI adds what to do.
        int code = e is UsageException ? ExitCodes.Usage : ExitCodes.For(TaskFailure.Classify(e));
        string message = e switch
        {
            RegistryException { Failure: RegistryFailure.Denied } r => r.Message + " (credentials go in registries.json in the data directory, or the file --registry-config names)",
            UnauthorizedAccessException => e.Message + " (check permissions, or choose another --data-dir)",
            // Core says what happened; which flag helps is the command line's business.
            Swarm.Core.Storage.StoreBusyException => e.Message + "; wait for it to finish or use a different --data-dir",
            Swarm.Core.Storage.InsufficientSpaceException => e.Message + "; free disk space or use a --data-dir on a larger disk",
            Swarm.Core.Exchange.ListenException => e.Message + "; pick another address with --listen IP:PORT (port 0 picks a free one)",
            Swarm.Core.Exchange.PeerUnavailableException { OtherPeersMayHelp: true } => e.Message + "; give --peer IP:PORT or --bootstrap IP:PORT of another node that holds the content",
            _ when e is UsageException || TaskFailure.IsExpected(e) => e.Message,
            // A bug: say what it was in one line; a stack trace helps nobody who runs the command (issue #15).
            _ => $"unexpected error ({e.GetType().Name}: {e.Message} at {e.TargetSite?.DeclaringType?.Name}.{e.TargetSite?.Name}); this is a bug in Swarm: please report it with this line and the command",
        };
        Console.Error.WriteLine($"swarm: {command}: {(scrub != null ? scrub(message) : message)}");
        return code;
    }
}
