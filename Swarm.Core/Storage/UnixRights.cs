using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Swarm.Core.Storage;

/// <summary>
/// Open files passed over a Unix stream socket as SCM_RIGHTS control messages (sendmsg/recvmsg: .NET has no managed API for
/// them). Linux only; the layouts are glibc's and musl's on 32- and 64-bit (size_t-sized lengths).
/// </summary>
public static unsafe partial class UnixRights
{
    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMessage(SafeSocketHandle socket, MessageHeader* message, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static partial nint ReceiveMessage(SafeSocketHandle socket, MessageHeader* message, int flags);

    [StructLayout(LayoutKind.Sequential)]
    private struct MessageHeader
    {
        public void* Name;
        public uint NameLength;
        public IoVector* Vectors;
        public nuint VectorCount;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVector
    {
        public void* Base;
        public nuint Length;
    }

    private const int SolSocket = 1, ScmRights = 1;
    private const int MsgControlTruncated = 0x8, MsgDontWait = 0x40, MsgNoSignal = 0x4000, MsgCmsgCloexec = 0x40000000;
    private const int EAGAIN = 11, EINTR = 4;

    /// <summary>Files one receive accepts; more in one message are refused (and closed) as a whole.</summary>
    public const int MaxFiles = 4;

    // struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; }, data aligned to size_t.
    private static int Align(int length) => (length + IntPtr.Size - 1) & ~(IntPtr.Size - 1);
    private static int HeaderLength => Align(IntPtr.Size + 2 * sizeof(int));
    private static int Space(int dataLength) => HeaderLength + Align(dataLength);

    /// <summary>Sends <paramref name="data"/> (at least one byte) with <paramref name="file"/> attached.</summary>
    public static void Send(Socket socket, ReadOnlySpan<byte> data, SafeHandle file)
    {
        if (data.IsEmpty) throw new ArgumentException("a file travels with at least one byte", nameof(data));
        int space = Space(sizeof(int));
        byte* control = stackalloc byte[space];
        new Span<byte>(control, space).Clear();
        *(nuint*)control = (nuint)(HeaderLength + sizeof(int));
        *(int*)(control + IntPtr.Size) = SolSocket;
        *(int*)(control + IntPtr.Size + sizeof(int)) = ScmRights;
        bool added = false;
        try
        {
            file.DangerousAddRef(ref added);
            *(int*)(control + HeaderLength) = (int)file.DangerousGetHandle();
            fixed (byte* bytes = data)
            {
                var vector = new IoVector { Base = bytes, Length = (nuint)data.Length };
                var message = new MessageHeader { Vectors = &vector, VectorCount = 1, Control = control, ControlLength = (nuint)space };
                while (true)
                {
                    nint sent = SendMessage(socket.SafeHandle, &message, MsgNoSignal);
                    if (sent == data.Length) return;
                    if (sent >= 0) throw new IOException($"the socket took {sent} of {data.Length} bytes");
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno != EINTR) throw new IOException(Marshal.GetPInvokeErrorMessage(errno), errno);
                }
            }
        }
        finally
        {
            if (added) file.DangerousRelease();
        }
    }

    /// <summary>
    /// One receive without waiting (call it once the socket is readable): the bytes into <paramref name="data"/> and every file
    /// that came with them into <paramref name="files"/> (close-on-exec; the caller owns and closes them). Returns the byte
    /// count (0: the peer closed), and whether the kernel had to drop files that did not fit (more than <see cref="MaxFiles"/>),
    /// or -1 when nothing was there after all.
    /// </summary>
    public static int Receive(Socket socket, Span<byte> data, List<SafeFileHandle> files, out bool truncated)
    {
        truncated = false;
        int space = Space(MaxFiles * sizeof(int));
        byte* control = stackalloc byte[space];
        new Span<byte>(control, space).Clear();
        fixed (byte* bytes = data)
        {
            var vector = new IoVector { Base = bytes, Length = (nuint)data.Length };
            var message = new MessageHeader { Vectors = &vector, VectorCount = 1, Control = control, ControlLength = (nuint)space };
            nint received;
            while (true)
            {
                received = ReceiveMessage(socket.SafeHandle, &message, MsgDontWait | MsgCmsgCloexec);
                if (received >= 0) break;
                int errno = Marshal.GetLastPInvokeError();
                if (errno == EAGAIN) return -1;
                if (errno != EINTR) throw new IOException(Marshal.GetPInvokeErrorMessage(errno), errno);
            }
            truncated = (message.Flags & MsgControlTruncated) != 0;
            // Walk the control messages the kernel filled in; every descriptor found is owned from here on.
            int length = (int)Math.Min(message.ControlLength, (nuint)space);
            for (int at = 0; at + HeaderLength <= length;)
            {
                int messageLength = (int)Math.Min(*(nuint*)(control + at), (nuint)int.MaxValue);
                if (messageLength < HeaderLength || at + messageLength > length) break;
                int level = *(int*)(control + at + IntPtr.Size), type = *(int*)(control + at + IntPtr.Size + sizeof(int));
                if (level == SolSocket && type == ScmRights)
                {
                    for (int fd = at + HeaderLength; fd + sizeof(int) <= at + messageLength; fd += sizeof(int))
                        files.Add(new SafeFileHandle(*(int*)(control + fd), ownsHandle: true));
                }
                at += Align(messageLength);
            }
            return (int)received;
        }
    }
}
