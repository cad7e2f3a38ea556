using System.CommandLine;
using System.Security.Cryptography;
using Swarm.Core.Identity;
using Swarm.Node;

namespace Swarm.Cli;

/// <summary>
/// <c>swarm id</c>: this data directory's node id (what other hosts put in <c>trusted-publishers</c>), and optionally its
/// public key as a PEM file to hand to them — never the private <c>node.key</c>.
/// </summary>
internal static class IdCommand
{
    public static Command Create()
    {
        var dataDir = CommonOptions.DataDir();
        var publicKey = new Option<FileInfo?>("--public-key") { Description = "Also write the public key (PEM) to this file, for other hosts' trusted-publishers." };
        var command = new Command("id", "Print the node id of the data directory (created on first use), as trusted-publishers takes it.") { dataDir, publicKey };
        command.SetAction(parse =>
        {
            try
            {
                string dir = DataDirectory.Resolve(parse.GetValue(dataDir));
                using var key = NodeKey.LoadOrCreate(dir);
                if (parse.GetValue(publicKey) is { } file)
                {
                    using var ecdsa = ECDsa.Create();
                    ecdsa.ImportSubjectPublicKeyInfo(key.PublicKey, out _);
                    File.WriteAllText(file.FullName, ecdsa.ExportSubjectPublicKeyInfoPem() + "\n");
                    Console.Error.WriteLine($"swarm: wrote the public key of node {key.NodeId.ToHex()} to {file.FullName}");
                }
                Console.Out.WriteLine(key.NodeId.ToHex());
                return ExitCodes.Ok;
            }
            catch (Exception e)
            {
                return Errors.Report("id", e);
            }
        });
        return command;
    }
}
