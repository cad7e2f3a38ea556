using Swarm.Core.Exchange;

namespace Swarm.Cli;

internal static class Errors
{
    /// <summary>
    /// Prints one line saying what failed and returns the matching exit code. <paramref name="scrub"/> (a request's
    /// <see cref="Swarm.Core.Sources.SecretRedactor.Scrub"/>) takes header values and signatures out of the message.
    /// </summary>
    public static int Report(string command, Exception e, Func<string?, string>? scrub = null)
    {
        (int code, string message) = e switch
        {
            UsageException or FormatException => (ExitCodes.Usage, e.Message),
            PeerUnavailableException => (ExitCodes.Unavailable, e.Message),
            Swarm.Core.Sources.OriginException => (ExitCodes.Unavailable, e.Message),
            Swarm.Core.Sources.RegistryException r => (ExitCodes.Unavailable, r.Failure == Swarm.Core.Sources.RegistryFailure.Denied
                ? r.Message + " (credentials go in registries.json in the data directory, or the file --registry-config names)" : r.Message),
            Swarm.Node.ConfigException => (ExitCodes.Usage, e.Message),
            ArgumentException => (ExitCodes.Usage, e.Message),
            Swarm.Node.DigestMismatchException => (ExitCodes.VerificationFailed, e.Message),
            FileNotFoundException or DirectoryNotFoundException => (ExitCodes.LocalError, e.Message),
            UnauthorizedAccessException => (ExitCodes.LocalError, e.Message + " (check permissions, or choose another --data-dir)"),
            IOException or InvalidDataException => (ExitCodes.LocalError, e.Message),
            _ => (ExitCodes.LocalError, $"unexpected error: {e}"),
        };
        Console.Error.WriteLine($"swarm: {command}: {(scrub != null ? scrub(message) : message)}");
        return code;
    }
}
