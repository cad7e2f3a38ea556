namespace Swarm.Tests.Support;

/// <summary>
/// Just enough of the protobuf wire format to read OTLP messages in tests: field tags, varints, fixed 32/64-bit values and
/// length-delimited fields (strings, bytes, nested messages). Unknown fields are skipped.
/// </summary>
public ref struct ProtoReader(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _at;

    public readonly bool End => _at >= _data.Length;

    /// <summary>The next field's number and wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).</summary>
    public (int Field, int WireType) ReadTag()
    {
        ulong tag = ReadVarint();
        return ((int)(tag >> 3), (int)(tag & 7));
    }

    public ulong ReadVarint()
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (_at >= _data.Length) throw new InvalidDataException("truncated varint");
            byte b = _data[_at++];
            value |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0) return value;
        }
        throw new InvalidDataException("varint longer than 10 bytes");
    }

    public ReadOnlySpan<byte> ReadBytes()
    {
        ulong length = ReadVarint();
        if (length > (ulong)(_data.Length - _at)) throw new InvalidDataException("length-delimited field longer than its message");
        var bytes = _data.Slice(_at, (int)length);
        _at += (int)length;
        return bytes;
    }

    public string ReadString() => System.Text.Encoding.UTF8.GetString(ReadBytes());

    public void Skip(int wireType)
    {
        switch (wireType)
        {
            case 0: ReadVarint(); break;
            case 1: Advance(8); break;
            case 2: ReadBytes(); break;
            case 5: Advance(4); break;
            default: throw new InvalidDataException($"wire type {wireType} is not supported");
        }
    }

    private void Advance(int count)
    {
        if (count > _data.Length - _at) throw new InvalidDataException("truncated fixed-width field");
        _at += count;
    }
}
