using System.Globalization;
using System.Text;

namespace Dalle2Sharp.Runtime;

/// <summary>
/// Python's <c>str.format</c> with named fields, for upstream's save-path templates
/// (<c>"checkpoints/{epoch:03d}_{samples_seen}.pth"</c>): <c>{name}</c>, <c>{name:spec}</c> with the format
/// mini-language's fill, align, sign, zero padding, width, thousands separator, precision and the
/// types d, f, e, g, %, s; <c>{{</c> and <c>}}</c> are literal braces. An unknown field or a malformed
/// template is an error naming the template, as Python's KeyError / ValueError would be.
/// </summary>
public static class PythonFormat
{
    public static string Format(string template, IReadOnlyDictionary<string, object> args)
    {
        var output = new StringBuilder();
        for (int i = 0; i < template.Length; i++)
        {
            char ch = template[i];
            if (ch == '{' && i + 1 < template.Length && template[i + 1] == '{') { output.Append('{'); i++; continue; }
            if (ch == '}' && i + 1 < template.Length && template[i + 1] == '}') { output.Append('}'); i++; continue; }
            if (ch == '}') throw new FormatException($"\"{template}\": single '}}' at {i}");
            if (ch != '{') { output.Append(ch); continue; }
            int close = template.IndexOf('}', i + 1);
            if (close < 0) throw new FormatException($"\"{template}\": '{{' at {i} is not closed");
            string field = template[(i + 1)..close];
            int colon = field.IndexOf(':');
            string name = colon < 0 ? field : field[..colon];
            string spec = colon < 0 ? "" : field[(colon + 1)..];
            if (name.Contains('!')) throw new FormatException($"\"{template}\": conversions (!r, !s) are not supported");
            if (!args.TryGetValue(name, out var value))
                throw new FormatException(
                    $"\"{template}\": unknown field {{{name}}} (available: {string.Join(", ", args.Keys.Select(k => "{" + k + "}"))})");
            output.Append(FormatValue(value, spec, template));
            i = close;
        }
        return output.ToString();
    }

    private static string FormatValue(object value, string spec, string template)
    {
        // [[fill]align][sign][#][0][width][,|_][.precision][type]
        int p = 0;
        char? fill = null, align = null;
        if (spec.Length >= 2 && "<>^=".Contains(spec[1])) { fill = spec[0]; align = spec[1]; p = 2; }
        else if (spec.Length >= 1 && "<>^=".Contains(spec[0])) { align = spec[0]; p = 1; }
        char sign = '-';
        if (p < spec.Length && "+- ".Contains(spec[p])) sign = spec[p++];
        if (p < spec.Length && spec[p] == '#') p++;
        if (p < spec.Length && spec[p] == '0') { fill ??= '0'; align ??= '='; p++; }
        int start = p;
        while (p < spec.Length && char.IsAsciiDigit(spec[p])) p++;
        if (p - start > 6) throw new FormatException($"\"{template}\": width in \"{spec}\" is too large");
        int width = p > start ? int.Parse(spec[start..p], CultureInfo.InvariantCulture) : 0;
        char? grouping = p < spec.Length && (spec[p] == ',' || spec[p] == '_') ? spec[p++] : null;
        int? precision = null;
        if (p < spec.Length && spec[p] == '.')
        {
            int s = ++p;
            while (p < spec.Length && char.IsAsciiDigit(spec[p])) p++;
            if (p == s) throw new FormatException($"\"{template}\": format spec \"{spec}\" has '.' without a precision");
            if (p - s > 3) throw new FormatException($"\"{template}\": precision in \"{spec}\" is too large");
            precision = int.Parse(spec[s..p], CultureInfo.InvariantCulture);
        }
        char type = p < spec.Length ? spec[p++] : '\0';
        if (p != spec.Length) throw new FormatException($"\"{template}\": invalid format spec \"{spec}\"");

        bool numeric = value is int or long or double or float;
        // Python formats an int with a float presentation type as the float.
        if (value is int or long && type is 'e' or 'E' or 'f' or 'F' or 'g' or 'G' or '%')
            value = Convert.ToDouble(value, CultureInfo.InvariantCulture);
        string body;
        bool negative = false;
        if (!numeric)
        {
            if (type is not ('\0' or 's')) throw new FormatException($"\"{template}\": format code '{type}' for a string value");
            body = Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
            if (precision is { } max && body.Length > max) body = body[..max];
            align ??= '<';
        }
        else
        {
            double d = Convert.ToDouble(value, CultureInfo.InvariantCulture);
            bool integral = value is int or long;
            negative = d < 0;
            double magnitude = Math.Abs(d);
            string groupFormat = grouping is null ? "" : "#,0";
            body = type switch
            {
                'd' when integral => Math.Abs(Convert.ToInt64(value, CultureInfo.InvariantCulture))
                    .ToString(grouping is null ? "D" : "#,0", CultureInfo.InvariantCulture),
                'd' => throw new FormatException($"\"{template}\": format code 'd' for a float value"),
                'f' or 'F' => magnitude.ToString((grouping is null ? "F" : "N") + (precision ?? 6), CultureInfo.InvariantCulture),
                '%' => (magnitude * 100).ToString("F" + (precision ?? 6), CultureInfo.InvariantCulture) + "%",
                'e' or 'E' => PythonExponent(magnitude, precision ?? 6, type),
                'g' or 'G' => PythonGeneral(magnitude, precision ?? 6, type == 'G', keepPoint: false),
                '\0' when !integral => precision is { } digits ? PythonGeneral(magnitude, digits, false, keepPoint: true) : PythonRepr(magnitude),
                '\0' => Math.Abs(Convert.ToInt64(value, CultureInfo.InvariantCulture))
                    .ToString(groupFormat.Length > 0 ? groupFormat : "D", CultureInfo.InvariantCulture),
                _ => throw new FormatException($"\"{template}\": format code '{type}' is not supported"),
            };
            if (grouping == '_') body = body.Replace(',', '_');
            align ??= '>';
        }
        string signText = negative ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
        int pad = Math.Max(0, width - body.Length - signText.Length);
        char f = fill ?? ' ';
        return align switch
        {
            '=' => signText + new string(f, pad) + body,
            '<' => signText + body + new string(f, pad),
            '^' => new string(f, pad / 2) + signText + body + new string(f, pad - pad / 2),
            _ => new string(f, pad) + signText + body,
        };
    }

    /// <summary>
    /// Python's 'g': <paramref name="precision"/> significant digits, fixed notation when the exponent is
    /// in [−4, precision), scientific otherwise, trailing zeros dropped (kept to one decimal with
    /// <paramref name="keepPoint"/>, as the format with no type does).
    /// </summary>
    private static string PythonGeneral(double value, int precision, bool upper, bool keepPoint)
    {
        precision = Math.Max(precision, 1);
        if (double.IsNaN(value)) return upper ? "NAN" : "nan";
        if (double.IsInfinity(value)) return upper ? "INF" : "inf";
        string scientific = PythonExponent(value, precision - 1, upper ? 'E' : 'e');
        int e = scientific.IndexOfAny(['e', 'E']);
        int exponent = int.Parse(scientific[(e + 1)..], CultureInfo.InvariantCulture);
        if (exponent >= -4 && exponent < precision)
        {
            string fixedText = value.ToString("F" + (precision - 1 - exponent), CultureInfo.InvariantCulture);
            if (fixedText.Contains('.')) fixedText = fixedText.TrimEnd('0').TrimEnd('.');
            return keepPoint && !fixedText.Contains('.') ? fixedText + ".0" : fixedText;
        }
        string mantissa = scientific[..e];
        if (mantissa.Contains('.')) mantissa = mantissa.TrimEnd('0').TrimEnd('.');
        return mantissa + scientific[e..];
    }

    /// <summary>Python's repr of a float: the shortest round-trip digits, scientific below 1e-4 and from 1e16.</summary>
    private static string PythonRepr(double value)
    {
        if (double.IsNaN(value)) return "nan";
        if (double.IsInfinity(value)) return "inf";
        string r = value.ToString("R", CultureInfo.InvariantCulture);
        if (value != 0 && (value < 1e-4 || value >= 1e16))
        {
            int digits = r.Replace(".", "").TrimStart('0').Split('E')[0].TrimEnd('0').Length;
            return PythonGeneral(value, Math.Max(digits, 1), false, keepPoint: false);
        }
        if (r.Contains('E')) r = value.ToString("F20", CultureInfo.InvariantCulture).TrimEnd('0');
        return r.Contains('.') ? r.TrimEnd('.') + (r.EndsWith('.') ? ".0" : "") : r + ".0";
    }

    /// <summary>Python's 'e' format: mantissa with the precision, exponent with a sign and at least two digits.</summary>
    private static string PythonExponent(double value, int precision, char type)
    {
        string s = value.ToString((type == 'E' ? "E" : "e") + precision, CultureInfo.InvariantCulture);   // 1.500000e+003
        int e = s.IndexOfAny(['e', 'E']);
        int exponent = int.Parse(s[(e + 1)..], CultureInfo.InvariantCulture);
        return s[..(e + 1)] + (exponent < 0 ? "-" : "+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
    }
}
