namespace Swarm.Cli;

/// <summary>
/// What the client-configuration commands (containerd-config, podman-config, docker-config) share: a file is replaced
/// whole or not at all, a file is recognised by its first line, and their errors end in one form and exit code.
/// </summary>
internal static class ConfigFiles
{
    /// <summary>Writes <paramref name="text"/> beside <paramref name="path"/> and renames it over, so a reader never sees half a file.</summary>
    public static void WriteAtomically(string path, string text)
    {
        File.WriteAllText(path + ".tmp", text);
        File.Move(path + ".tmp", path, overwrite: true);
    }

    public static string FirstLine(string path)
    {
        using var reader = new StreamReader(path);
        return reader.ReadLine() ?? "";
    }

    /// <summary>
    /// Runs a command's body: a usage error prints "swarm: COMMAND: message" and gives exit 1, a file that cannot be
    /// written "swarm: COMMAND: cannot WHAT: message" and the local-error code. <paramref name="what"/> says what could not be
    /// done (default "write").
    /// </summary>
    public static int Run(string command, Func<int> body, Func<string>? what = null)
    {
        try
        {
            return body();
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"swarm: {command}: {e.Message}");
            return ExitCodes.Usage;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"swarm: {command}: cannot {what?.Invoke() ?? "write"}: {e.Message}");
            return ExitCodes.LocalError;
        }
    }
}
