from tests.mail.smtp_server import certificates, closed_port, hanging_port, mail_server, smtp_server

__all__ = ["certificates", "closed_port", "hanging_port", "mail_server", "smtp_server"]
