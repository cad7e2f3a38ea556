using System.CommandLine;
using Swarm.Core.Identity;

namespace Swarm.Cli;

/// <summary><c>swarm keygen FILE</c>: writes a new swarm key (mode 0600) for a private swarm; never replaces a file.</summary>
internal static class KeygenCommand
{
    public static Command Create()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "Where to write the key (created with mode 0600; an existing file is never replaced)." };
        var command = new Command("keygen",
            "Write a new swarm key. Copy it to every member host (mode 0600) and give it with --swarm-key, $SWARM_SWARM_KEY or \"swarm-key\" " +
            "in swarm.json: nodes with it admit only peers that hold it, and their peer and DHT traffic is closed to everyone else.")
        {
            file,
        };
        command.SetAction(parse =>
        {
            string path = parse.GetValue(file)!.FullName;
            try
            {
                var key = SwarmKey.Create(path);
                Console.Error.WriteLine($"swarm: wrote a new swarm key to {path} (fingerprint {key.Fingerprint}); copy it to every member and keep it mode 0600");
                Console.Out.WriteLine(key.Fingerprint);
                return ExitCodes.Ok;
            }
            catch (IOException) when (File.Exists(path) || Directory.Exists(path))
            {
                Console.Error.WriteLine($"swarm: keygen: {path} exists already; keygen never replaces a key (members holding the old one would be locked out). Choose another path, or remove the file first.");
                return ExitCodes.Usage;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"swarm: keygen: cannot write {path}: {e.Message}; choose a directory you can write");
                return ExitCodes.LocalError;
            }
        });
        return command;
    }
}
