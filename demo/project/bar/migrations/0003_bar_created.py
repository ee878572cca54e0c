from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("bar", "0002_bar_description")]

    operations = [
        migrations.AddField(
            model_name="bar",
            name="created",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
