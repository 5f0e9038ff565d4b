using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace Dalle2Sharp.Clip;

/// <summary>
/// CLIP's caption cleaning: ftfy.fix_text's default fixes (terminal escapes, mojibake — UTF-8 read as
/// Windows-1252 or Latin-1 —, C1 controls, Latin ligatures, full-width characters, curly quotes, line
/// breaks, control characters, NFC), then html.unescape twice and trimming (basic_clean), then runs of
/// whitespace made one space (whitespace_clean). ftfy's statistical mojibake detector is reduced to
/// its clear cases: a run that re-decodes as valid UTF-8 and contains the byte pairs mojibake leaves.
/// </summary>
public static partial class TextCleaner
{
    public static string Clean(string text) => Whitespace(BasicClean(text));

    public static string BasicClean(string text)
    {
        text = FixText(text);
        text = WebUtility.HtmlDecode(WebUtility.HtmlDecode(text));
        return text.Trim();
    }

    /// <summary>
    /// Python's str.lower(): Unicode full lower-casing, which differs from .NET's per-character mapping
    /// for İ (→ "i̇") and a word-final Σ (→ ς).
    /// </summary>
    public static string PythonLower(string text)
    {
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\u0130') sb.Append("i\u0307");
            else if (c == '\u03a3') sb.Append(FinalSigma(text, i) ? '\u03c2' : '\u03c3');
            else if (char.IsSurrogatePair(text, i))
            {
                sb.Append(char.ConvertFromUtf32(ToLower(char.ConvertToUtf32(text, i))));
                i++;
            }
            else sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }

    private static int ToLower(int codePoint) =>
        char.ConvertToUtf32(char.ConvertFromUtf32(codePoint).ToLowerInvariant(), 0);

    /// <summary>Unicode's Final_Sigma: a cased letter before (case-ignorable characters skipped), none after.</summary>
    private static bool FinalSigma(string text, int at)
    {
        static bool Ignorable(char c) => CharUnicodeInfo.GetUnicodeCategory(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol || c is '\'' or '.' or ':' or '\u00b7';
        static bool Cased(char c) => char.IsUpper(c) || char.IsLower(c) || CharUnicodeInfo.GetUnicodeCategory(c) == UnicodeCategory.TitlecaseLetter;
        int before = at - 1;
        while (before >= 0 && Ignorable(text[before])) before--;
        if (before < 0 || !Cased(text[before])) return false;
        int after = at + 1;
        while (after < text.Length && Ignorable(text[after])) after++;
        return after >= text.Length || !Cased(text[after]);
    }

    public static string Whitespace(string text) => WhitespaceRun().Replace(text, " ").Trim();

    /// <summary>ftfy.fix_text with its default settings, for what CLIP's captions meet.</summary>
    public static string FixText(string text)
    {
        // unescape_html="auto": entities are decoded unless the text looks like HTML (has a "<").
        if (!text.Contains('<')) text = WebUtility.HtmlDecode(text);
        text = TerminalEscape().Replace(text, "");
        text = FixEncoding(text);
        text = FixC1Controls(text);
        text = FixLigatures(text);
        text = FixWidth(text);
        text = SingleQuotes().Replace(text, "'");
        text = DoubleQuotes().Replace(text, "\"");
        text = LineBreaks().Replace(text, "\n");
        text = ControlChars().Replace(text, "");
        return text.Normalize(NormalizationForm.FormC);
    }

    private static readonly Encoding Windows1252 = CodePagesEncoding(1252);
    private static readonly Encoding StrictUtf8 = new UTF8Encoding(false, throwOnInvalidBytes: true);

    private static Encoding CodePagesEncoding(int codePage)
    {
        Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);
        return Encoding.GetEncoding(codePage, EncoderFallback.ExceptionFallback, DecoderFallback.ExceptionFallback);
    }

    /// <summary>
    /// Mojibake: text whose characters, written back as Windows-1252 (Latin-1 for the five bytes it leaves
    /// undefined), are valid UTF-8 — repeated while it changes (double-encoded text), only where the
    /// characters show the lead/continuation pattern UTF-8 leaves when misread.
    /// </summary>
    private static string FixEncoding(string text)
    {
        for (int round = 0; round < 3 && Mojibake().IsMatch(text); round++)
        {
            string fixedText = Mojibake().Replace(text, m => Redecode(m.Value) ?? m.Value);
            if (fixedText == text) break;
            text = fixedText;
        }
        return text;
    }

    private static string? Redecode(string run)
    {
        var bytes = new List<byte>(run.Length);
        foreach (char c in run)
        {
            if (c < 0x100 && (c < 0x80 || c >= 0xA0 || c is '\u0081' or '\u008d' or '\u008f' or '\u0090' or '\u009d')) bytes.Add((byte)c);
            else
            {
                try { bytes.AddRange(Windows1252.GetBytes(c.ToString())); }
                catch (EncoderFallbackException) { return null; }
            }
        }
        try { return StrictUtf8.GetString(bytes.ToArray()); }
        catch (DecoderFallbackException) { return null; }
    }

    /// <summary>C1 control characters (U+0080–U+009F) as the Windows-1252 characters they stand for.</summary>
    private static string FixC1Controls(string text) => C1Control().Replace(text, m =>
    {
        try { return Windows1252.GetString([(byte)m.Value[0]]); }
        catch (DecoderFallbackException) { return m.Value; }
    });

    private static readonly Dictionary<char, string> Ligatures = new()
    {
        ['Ĳ'] = "IJ", ['ĳ'] = "ij", ['ŉ'] = "ʼn", ['Ǳ'] = "DZ", ['ǲ'] = "Dz", ['ǳ'] = "dz", ['Ǆ'] = "DŽ", ['ǅ'] = "Dž", ['ǆ'] = "dž",
        ['Ǉ'] = "LJ", ['ǈ'] = "Lj", ['ǉ'] = "lj", ['Ǌ'] = "NJ", ['ǋ'] = "Nj", ['ǌ'] = "nj",
        ['ﬀ'] = "ff", ['ﬁ'] = "fi", ['ﬂ'] = "fl", ['ﬃ'] = "ffi", ['ﬄ'] = "ffl", ['ﬅ'] = "ſt", ['ﬆ'] = "st",
    };

    private static string FixLigatures(string text)
    {
        if (!text.Any(Ligatures.ContainsKey)) return text;
        var sb = new StringBuilder(text.Length);
        foreach (char c in text) sb.Append(Ligatures.TryGetValue(c, out var s) ? s : c.ToString());
        return sb.ToString();
    }

    /// <summary>Full-width ASCII, the ideographic space and half-width katakana/hangul to their usual forms (NFKC, per character).</summary>
    private static string FixWidth(string text) =>
        WidthVariant().Replace(text, m => m.Value.Normalize(NormalizationForm.FormKC));

    [GeneratedRegex(@"\s+")]
    private static partial Regex WhitespaceRun();

    [GeneratedRegex(@"\x1b\[((?:\d|;)*)([a-zA-Z])")]
    private static partial Regex TerminalEscape();

    /// <summary>Runs holding a UTF-8 lead byte misread (Â-ô, or â/ã/ð… ) followed by continuation bytes misread (0x80–0xBF as
    /// cp1252/latin-1).</summary>
    [GeneratedRegex("[\u00C2-\u00F4][\u0080-\u00BF\u0152\u0153\u0160\u0161\u0178\u017D\u017E\u0192\u02C6\u02DC\u2013\u2014\u2018-\u201E\u2020-" +
        "\u2022\u2026\u2030\u2039\u203A\u20AC\u2122]+")]
    private static partial Regex Mojibake();

    [GeneratedRegex("[\u0080-\u009f]")]
    private static partial Regex C1Control();

    [GeneratedRegex("[\u3000\uff01-\uff5e\uff61-\uffdc]")]
    private static partial Regex WidthVariant();

    [GeneratedRegex("[\u02bc\u2018-\u201b]")]
    private static partial Regex SingleQuotes();

    [GeneratedRegex("[\u201c-\u201f]")]
    private static partial Regex DoubleQuotes();

    [GeneratedRegex("\r\n|[\r\u2028\u2029\u0085]")]
    private static partial Regex LineBreaks();

    /// <summary>ftfy's remove_control_chars: C0 controls but tab, newline, form feed and CR; DEL; deprecated format characters; BOM; interlinear
    /// annotations.</summary>
    [GeneratedRegex("[\u0000-\u0008\u000b\u000e-\u001f\u007f\u206a-\u206f\ufeff\ufff9-\ufffc]")]
    private static partial Regex ControlChars();
}
