from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("bar", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="bar",
            name="description",
            field=models.TextField(blank=True, default=""),
        ),
    ]
