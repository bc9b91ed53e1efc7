// Job: a DKIM-signed test message (MimeKit, a fresh RSA key, simple/simple canonicalization, CRLF) and its verification
// with that key: the proof that a message reached the store byte for byte.
// Failure: a signature that does not verify is false from VerifyAsync; building never fails.
using System.Security.Cryptography;
using System.Text;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.OpenSsl;

namespace Bridge.Tests.Support;

public static class DkimTestMessage
{
    /// <summary>A signed message for <paramref name="to"/> with <paramref name="body"/> (CRLF lines) and the public key.</summary>
    /// <param name="utf8Headers">Header fields in raw UTF-8 (RFC 6532) rather than RFC 2047 encoded words.</param>
    public static (byte[] Message, string PublicKeyPem) Create(string to, string? body = null, string subject = "signed", bool utf8Headers = false)
    {
        using var rsa = RSA.Create(2048);
        var privatePem = rsa.ExportRSAPrivateKeyPem();
        var publicPem = rsa.ExportSubjectPublicKeyInfoPem();
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Sender", "sender@example.org"));
        message.To.Add(new MailboxAddress("Alice", to));
        message.Subject = subject;
        message.MessageId = "signed@test";
        message.Date = new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);
        message.Body = new TextPart("plain") { Text = body ?? "A body with a long line " + new string('x', 200) + "\r\nand caf\u00e9.\r\n.dot line\r\n" };
        using var keyStream = new MemoryStream(Encoding.ASCII.GetBytes(privatePem));
        var signer = new DkimSigner(keyStream, "example.org", "test")
        {
            HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Simple,
            BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Simple,
        };
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        options.International = utf8Headers;
        message.Prepare(EncodingConstraint.EightBit);
        signer.Sign(options, message, [HeaderId.From, HeaderId.To, HeaderId.Subject, HeaderId.Date, HeaderId.MessageId]);
        using var output = new MemoryStream();
        message.WriteTo(options, output);
        return (output.ToArray(), publicPem);
    }

    /// <summary>Whether the DKIM-Signature of <paramref name="stored"/> verifies with the key.</summary>
    public static Task<bool> VerifyAsync(byte[] stored, string publicKeyPem)
    {
        var message = MimeMessage.Load(new MemoryStream(stored));
        var signature = message.Headers[message.Headers.IndexOf(HeaderId.DkimSignature)];
        return new DkimVerifier(new StaticKeyLocator(publicKeyPem)).VerifyAsync(message, signature);
    }

    private sealed class StaticKeyLocator(string publicKeyPem) : DkimPublicKeyLocatorBase
    {
        public override AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            (AsymmetricKeyParameter)new PemReader(new StringReader(publicKeyPem)).ReadObject();

        public override Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            Task.FromResult(LocatePublicKey(methods, domain, selector, cancellationToken));
    }
}
