namespace Swarm.Core.Storage;

/// <summary>What <c>statx(2)</c> says about a file: its type, permission bits and, for a device, its numbers.</summary>
public readonly record struct UnixFileStatus(UnixFileType Type, int Mode, uint DeviceMajor, uint DeviceMinor)
{
    public static readonly UnixFileStatus Missing = new(UnixFileType.Missing, 0, 0, 0);

    /// <summary>The type in words, for messages.</summary>
    public static string Describe(UnixFileType type) => type switch
    {
        UnixFileType.Missing => "missing",
        UnixFileType.Regular => "a regular file",
        UnixFileType.Directory => "a directory",
        UnixFileType.Symlink => "a symbolic link",
        UnixFileType.Fifo => "a FIFO",
        UnixFileType.CharacterDevice => "a character device",
        UnixFileType.BlockDevice => "a block device",
        UnixFileType.Socket => "a socket",
        _ => "a special file",
    };
}
