using System.Security.Cryptography;
using System.Text;

namespace Swarm.Core.Identity;

/// <summary>
/// The optional pre-shared secret of a private swarm: 32 random bytes that every member holds. Nodes with it admit only
/// peers that prove they hold it (TCP) and answer only datagrams authenticated with it (DHT); nodes without it form an
/// open swarm. Each use derives its own key from the secret (HKDF-SHA256), so the DHT's MAC key and the TCP admission
/// key are never the same bytes.
/// </summary>
/// <remarks>
/// File format (text, so it can be pasted into a secret store): the line <c>swarm-key/v1</c>, then 64 hexadecimal
/// digits. The file must be readable by its owner only (mode 0600 or 0400): a key others can read admits them.
/// </remarks>
public sealed class SwarmKey
{
    public const string Header = "swarm-key/v1";
    public const int Length = 32;
    private readonly byte[] _secret;

    private SwarmKey(byte[] secret)
    {
        _secret = secret;
        // Not secret: lets an operator compare two hosts' keys without showing them (like an SSH key fingerprint).
        Fingerprint = Convert.ToHexStringLower(SHA256.HashData(Derive("swarm/fingerprint/v1"))[..8]);
    }

    /// <summary>16 hex digits that name the key without revealing it.</summary>
    public string Fingerprint { get; }

    public static SwarmKey Generate() => new(RandomNumberGenerator.GetBytes(Length));

    /// <summary>A key from its 32 bytes (tests, and the decoder of the file format).</summary>
    public static SwarmKey FromBytes(ReadOnlySpan<byte> secret)
    {
        if (secret.Length != Length) throw new ArgumentException($"a swarm key is {Length} bytes, not {secret.Length}", nameof(secret));
        return new SwarmKey(secret.ToArray());
    }

    /// <summary>A key derived for one purpose (an HKDF-SHA256 "info" label), 32 bytes.</summary>
    public byte[] Derive(string purpose) =>
        HKDF.DeriveKey(HashAlgorithmName.SHA256, _secret, Length, salt: "swarm-key"u8.ToArray(), info: Encoding.ASCII.GetBytes(purpose));

    /// <summary>The file's text.</summary>
    public string Encode() => Header + "\n" + Convert.ToHexStringLower(_secret) + "\n";

    /// <summary>Reads the file format; <see cref="InvalidDataException"/> says what is wrong with it.</summary>
    public static SwarmKey Decode(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length != 2 || lines[0] != Header)
            throw new InvalidDataException($"it is not a swarm key (expected the line '{Header}' and then 64 hex digits)");
        if (lines[1].Length != 2 * Length || !lines[1].All(Uri.IsHexDigit))
            throw new InvalidDataException($"its key line is not {2 * Length} hex digits");
        return new SwarmKey(Convert.FromHexString(lines[1]));
    }

    /// <summary>
    /// Loads a key file. Refuses one that group or others may read or write (say how to fix it), one that is not a
    /// regular file, and one larger than a key file can be, before reading it.
    /// </summary>
    public static SwarmKey Load(string path)
    {
        FileInfo info;
        try
        {
            info = new FileInfo(path);
            if (info.LinkTarget != null) info = (FileInfo?)info.ResolveLinkTarget(returnFinalTarget: true) ?? info;
        }
        catch (IOException e)
        {
            throw new InvalidDataException($"swarm key {path} cannot be read: {e.Message}", e);
        }
        if (!info.Exists)
            throw new FileNotFoundException($"swarm key {path} does not exist; create one with 'swarm keygen {path}' and copy it to every member", path);
        if (!OperatingSystem.IsWindows())
        {
            const UnixFileMode others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
                | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
            var mode = info.UnixFileMode;
            if ((mode & others) != 0)
                throw new InvalidDataException(
                    $"swarm key {path} may be read by other users (mode 0{Convert.ToString((int)mode & 0xFFF, 8)}); make it the owner's only: chmod 600 {path}");
        }
        if (info.Length > 1024) throw new InvalidDataException($"swarm key {path} is {info.Length} bytes; a swarm key file is about 80");
        string text;
        try
        {
            text = File.ReadAllText(path, Encoding.ASCII);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"swarm key {path} cannot be read: {e.Message}", e);
        }
        try
        {
            return Decode(text);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"swarm key {path}: {e.Message}", e);
        }
    }

    /// <summary>Writes a new key file (mode 0600). Never replaces an existing file: a replaced key locks a host out of its swarm.</summary>
    public static SwarmKey Create(string path)
    {
        var key = Generate();
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var fs = new FileStream(path, options))
        {
            fs.Write(Encoding.ASCII.GetBytes(key.Encode()));
            fs.Flush(true);
        }
        return key;
    }
}
