namespace ProxyGuard.Policy;

/// <summary>
/// A normalised request path. <paramref name="Ambiguous"/> is true when servers could read the raw path differently
/// (encoded slashes, encoded dot segments, backslashes, NUL/control characters, double encoding, invalid escapes,
/// empty segments, <c>..</c> above the root): such a path never matches an allow rule that has <c>paths</c>.
/// </summary>
public sealed record PathNormalization(string Path, bool Ambiguous);
