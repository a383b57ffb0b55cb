using System.CommandLine;

namespace ProxyGuard.Commands;

/// <summary>Flag checks shared by the commands, so a mistake is a usage error (exit 2) with one line, not an exception.</summary>
internal static class OptionChecks
{
    /// <summary>An explicitly empty value (<c>--data-dir ""</c>) is refused: it would otherwise mean "the current directory" to some calls and fail in others.</summary>
    public static T NotEmpty<T>(this T option)
        where T : Option
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && string.IsNullOrWhiteSpace(result.Tokens[^1].Value))
            {
                result.AddError($"{option.Name}: must not be empty");
            }
        });
        return option;
    }
}
